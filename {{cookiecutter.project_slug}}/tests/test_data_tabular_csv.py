"""Tabular CSV data: layout, column roles, gaps, one-hot and embedded levels, train-only statistics, errors."""

import csv
import logging
import math
from pathlib import Path

import pytest
import torch
from test_report import (
    check_optional_test_split,
    check_unknown_test_class_stops_training_before_it_starts,
)

from {{ cookiecutter.package_name }}.data import DataError, build_dataloaders, build_datasets
from {{ cookiecutter.package_name }}.data.common import SAMPLE_DATA_ROOT
from {{ cookiecutter.package_name }}.data.preprocessing import embedding_dim
from {{ cookiecutter.package_name }}.data.sample import CLASS_CENTRES, COLUMNS, write_sample
from {{ cookiecutter.package_name }}.models import build_model

FEATURES = [c for c in COLUMNS if c not in ("id", "label")]  # the sample's feature columns (id is dropped)


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


# What predict.py takes here: CSV files. tests/test_predict.py runs these.


def val_inputs(data_root: Path, val_set, tmp_path: Path) -> tuple[list[str], list[str]]:
    """(predict.py inputs, the `input` name predict.py gives each val sample, in val order)."""
    val_csv = data_root / "val.csv"
    return [str(val_csv)], [f"{val_csv}:{line}" for line in range(2, len(val_set) + 2)]  # line 1: the header


def mixed_predict_inputs(data_root: Path, names: list[str], tmp_path: Path):
    """(inputs, the names predict.py must give, in order; pairs of names that must get the same numbers).

    Columns by name in any order, an extra id column, no label column, several files: the same numbers as val.csv.
    """
    records = read_rows(data_root / "val.csv")
    columns = [c for c in records[0] if c != "label"]
    first_rows = [[i, *(r[c] for c in reversed(columns))] for i, r in enumerate(records[:5])]
    first = write_csv(tmp_path / "first.csv", ["row", *reversed(columns)], first_rows)
    second = write_csv(tmp_path / "second.csv", columns, [[r[c] for c in columns] for r in records[5:7]])
    expected = [f"{first}:{i}" for i in range(2, 7)] + [f"{second}:2", f"{second}:3", *names]
    same = list(zip(expected[:7], names[:7], strict=True))
    return [str(first), str(second), str(data_root / "val.csv")], expected, same


def bad_predict_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    """(inputs, the error they must raise, as a regex) for predict.py."""
    cases = [
        ([c for c in FEATURES if c != "income"], [[0] * 6], r"has no column 'income'; the model needs .*\['x1'"),
        (FEATURES, [[0, 0, "oops", "red", 0, "city_00", 0]], r"line 2: column 'x3' = 'oops' is not a number"),
        (FEATURES, [], "no rows found"),
    ]
    found = [([str(write_csv(tmp_path / f"bad{i}.csv", *case[:2]))], case[2]) for i, case in enumerate(cases)]
    return [*found, ([str(tmp_path / "missing.csv")], "does not exist"), ([str(tmp_path)], "is a folder")]


def cli_bad_predict_input(tmp_path: Path) -> tuple[list[str], str]:
    """(predict.py arguments, how its one-line error starts)."""
    bad = write_csv(tmp_path / "bad.csv", ["x1", "x2", "x3", "label"], [[0, 0, 0, "alpha"]])
    return [str(bad)], f"error: {bad} has no column 'income', 'noise'"


def numeric_info(info: dict, name: str) -> dict:
    return next(column for column in info["numeric"] if column["name"] == name)


def build(root: Path, make_config, data_info=None, **settings):
    return build_datasets(make_config(**{"data.root": root, **settings}), data_info)


def test_sample_data_layout_and_batches(data_root, make_config):
    for split, count in (("train", 60), ("val", 30)):
        rows = read_rows(data_root / f"{split}.csv")
        assert len(rows) == count and list(rows[0]) == COLUMNS
        assert {row["label"] for row in rows} == set(CLASS_CENTRES)
    cfg = make_config()
    train_loader, val_loader, info = build_dataloaders(cfg)
    assert info["classes"] == sorted(CLASS_CENTRES) and info["num_classes"] == len(CLASS_CENTRES)
    assert sorted(info["feature_columns"]) == sorted(FEATURES)  # id dropped (data.drop_columns), label apart
    assert [c["name"] for c in info["categorical"]] == ["color", "city"]
    assert info["embeddings"] == [[len(info["categorical"][1]["levels"]) + 1, info["categorical"][1]["embedding_dim"]]]
    assert len(train_loader.dataset) == 60 and len(val_loader.dataset) == 30
    inputs, targets = next(iter(train_loader))
    assert inputs.shape == (cfg.data.batch_size, info["num_features"])  # the city codes in the last column
    assert inputs.dtype == torch.float32 and targets.dtype == torch.int64
    assert int(targets.min()) >= 0 and int(targets.max()) < len(CLASS_CENTRES)
    assert sum(len(t) for _, t in val_loader) == 30  # val keeps every sample


def test_labels_map_row_by_row(data_root, make_config):
    train_set, val_set, info = build_datasets(make_config())
    for dataset, split in ((train_set, "train"), (val_set, "val")):
        labels = [row["label"] for row in read_rows(data_root / f"{split}.csv")]
        assert [info["classes"][i] for i in dataset.labels.tolist()] == labels
        x, y = dataset[0]
        assert x.dtype == torch.float32 and x.shape == (info["num_features"],)
        assert y.dtype == torch.int64 and y.shape == ()


def test_roles_are_inferred_from_train_and_logged(tmp_path, make_config, caplog):
    root = tmp_path / "roles"
    header = ["id", "size", "zip", "color", "label"]
    rows = [[i, i * 1.5, f"0{i}", "red" if i % 2 else "", "ab"[i % 2]] for i in range(8)]
    write_csv(root / "train.csv", header, rows)
    write_csv(root / "val.csv", header, rows[:2])
    with caplog.at_level(logging.INFO):
        _, _, info = build(root, make_config)
    assert [c["name"] for c in info["numeric"]] == ["size", "zip"]  # "01" parses as a number
    assert [c["name"] for c in info["categorical"]] == ["color"]
    assert "numeric columns ['size', 'zip']" in caplog.text and "one-hot ['color']" in caplog.text
    # Configured roles win: a zip code is a category even though it looks like a number.
    _, _, info = build(root, make_config, **{"data.categorical_columns": ["zip"], "data.numeric_columns": ["size"]})
    assert [c["name"] for c in info["categorical"]] == ["zip", "color"]
    assert info["categorical"][0]["levels"] == sorted(f"0{i}" for i in range(8))  # the text as written
    with pytest.raises(DataError, match="'nope'"):
        build(root, make_config, **{"data.numeric_columns": ["nope"]})
    with pytest.raises(DataError, match="both"):
        build(root, make_config, **{"data.numeric_columns": ["zip"], "data.categorical_columns": ["zip"]})
    with pytest.raises(DataError, match=r"line 3: column 'color' = 'red' is not a number"):
        build(root, make_config, **{"data.numeric_columns": ["color"]})


def test_missing_value_tokens_are_gaps_and_a_few_words_among_numbers_warn(tmp_path, make_config, caplog):
    root = tmp_path / "tokens"
    tokens = ["NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "?", "-", ""]
    rows = [
        [str(i * 2), tokens[i % len(tokens)] if i % 3 == 0 else str(i), "low" if i % 2 else "NA", "ab"[i % 2]]
        for i in range(30)
    ]
    rows[5][0], rows[6][0], rows[7][0] = "missing", "missing", "unknown"  # 3 words among 27 numbers
    write_csv(root / "train.csv", ["words", "gappy", "level", "label"], rows)
    write_csv(root / "val.csv", ["words", "gappy", "level", "label"], rows[:3])
    with caplog.at_level(logging.INFO):
        train_set, _, info = build(root, make_config)
    gappy = numeric_info(info, "gappy")  # NA, ?, - ... are gaps: the column stays numeric
    present = [i for i in range(30) if i % 3]
    assert gappy["missing_indicator"] and gappy["median"] == sorted(present)[(len(present) - 1) // 2]
    assert info["categorical"][1] == {"name": "level", "levels": ["", "low"], "embedding_dim": 0}  # NA: a gap
    assert [c["name"] for c in info["categorical"]][0] == "words"
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "'words'" in r.message)
    assert "{'missing': 2, 'unknown': 1}" in warning and "data.na_values" in warning
    assert "data.categorical_columns" in warning
    assert not [r for r in caplog.records if r.levelno == logging.WARNING and "'gappy'" in r.getMessage()]
    # data.na_values changes the list: "?" alone is a gap now, so NA makes `gappy` categories
    _, _, info = build(root, make_config, **{"data.na_values": ["?", "missing", "unknown"]})
    assert numeric_info(info, "words")["missing_indicator"] and "gappy" in column_names(info["categorical"])
    assert info["na_values"] == ["?", "missing", "unknown"]  # saved: evaluate and predict read alike


def column_names(columns: list[dict]) -> list[str]:
    return [c["name"] for c in columns]


def test_numeric_gaps_get_the_train_median_and_a_missing_flag(tmp_path, make_config):
    root = tmp_path / "gaps"
    write_csv(root / "train.csv", ["x", "full", "label"], [["1", 5, "a"], ["", 6, "b"], ["3", 7, "a"], ["10", 8, "b"]])
    write_csv(root / "val.csv", ["x", "full", "label"], [["", "", "a"], ["3", 6, "b"]])
    train_set, val_set, info = build(root, make_config)
    x, full = numeric_info(info, "x"), numeric_info(info, "full")
    assert x["median"] == 3.0 and x["missing_indicator"] and not full["missing_indicator"]
    filled = torch.tensor([1.0, 3.0, 3.0, 10.0], dtype=torch.float64)
    assert x["mean"] == pytest.approx(filled.mean().item())
    assert x["std"] == pytest.approx(filled.std(unbiased=False).item())
    assert info["num_features"] == 3  # x, x missing, full
    assert train_set.features[:, 1].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert train_set.features[1, 0].item() == pytest.approx((3.0 - x["mean"]) / x["std"])
    # val's gaps: the *train* median (its own would differ); a gap where train had none is filled too
    expected = [(3.0 - x["mean"]) / x["std"], 1.0, (full["median"] - full["mean"]) / full["std"]]
    assert val_set.features[0].tolist() == pytest.approx(expected)


def test_standardised_with_train_statistics(tmp_path, make_config):
    root = tmp_path / "shifted"
    train = [[i, 1000.0 + 50 * i, 7.0, "a" if i % 2 else "b"] for i in range(20)]
    val = [[100.0 + i, -3.0, 7.0, "a"] for i in range(5)]
    write_csv(root / "train.csv", ["x", "big", "const", "label"], train)
    write_csv(root / "val.csv", ["x", "big", "const", "label"], val)
    train_set, val_set, info = build(root, make_config)
    x = train_set.features
    assert torch.allclose(x[:, :2].mean(dim=0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(x[:, :2].std(dim=0, unbiased=False), torch.ones(2), atol=1e-5)
    assert torch.equal(x[:, 2], torch.zeros(20)) and numeric_info(info, "const")["std"] == 1.0  # no division by zero
    # val is scaled with *train's* mean/std, so its shift stays visible (its own stats would give mean 0)
    mean, std = (torch.tensor([c[key] for c in info["numeric"]]) for key in ("mean", "std"))
    expected = (torch.tensor([row[:3] for row in val], dtype=torch.float64) - mean) / std
    assert torch.allclose(val_set.features.double(), expected, atol=1e-5)
    assert val_set.features[:, 0].mean() > 5


def test_categories_one_hot_with_gaps_as_a_level_and_unseen_levels_as_zeros(tmp_path, make_config, caplog):
    root = tmp_path / "colors"
    write_csv(root / "train.csv", ["color", "label"], [["red", "a"], ["blue", "b"], ["", "a"], ["red", "b"]])
    write_csv(root / "val.csv", ["color", "label"], [["blue", "a"], ["purple", "b"], ["", "a"], ["pink", "a"]])
    with caplog.at_level(logging.INFO):
        train_set, val_set, info = build(root, make_config)
    assert info["categorical"] == [{"name": "color", "levels": ["", "blue", "red"], "embedding_dim": 0}]
    assert train_set.features.tolist() == [[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 1]]
    assert val_set.features.tolist() == [[0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]]  # unseen: all zeros
    assert "val.csv: 2 value(s) of 'color' not seen in train, encoded as unknown" in caplog.text


def test_many_levels_become_an_embedding_the_model_learns(tmp_path, make_config):
    root = tmp_path / "cities"
    rows = [[f"c{i % 12}", i % 3, "ab"[i % 2]] for i in range(24)]
    write_csv(root / "train.csv", ["city", "x", "label"], rows)
    write_csv(root / "val.csv", ["city", "x", "label"], [["c3", 0, "a"], ["elsewhere", 1, "b"]])
    cfg = make_config(**{"data.root": root, "data.embedding_threshold": 10})
    train_set, val_set, info = build_datasets(cfg)
    city = info["categorical"][0]
    assert len(city["levels"]) == 12 and city["embedding_dim"] == embedding_dim(13) == 7
    assert info["embeddings"] == [[13, 7]] and info["num_features"] == 2  # x, then the codes
    assert val_set.features[:, 1].tolist() == [city["levels"].index("c3"), 12]  # unseen: the extra row 12
    model = build_model(cfg, info)
    assert model(train_set.features[:4]).shape == (4, 2)
    model(val_set.features).sum().backward()
    assert model.embeddings[0].weight.grad[[city["levels"].index("c3"), 12]].abs().sum() > 0  # both rows learn
    assert embedding_dim(3) == 3 and embedding_dim(1000) == 77  # round(1.6 * levels ** 0.56)


def test_empty_label_cell_names_file_and_line(tmp_path, make_config):
    root = tmp_path / "empty_label"
    path = write_csv(root / "train.csv", ["x", "label"], [[1, "a"], [2, "b"], [3, " "]])
    with pytest.raises(DataError, match=rf"{path} line 4: the label cell \(label\) is empty"):
        build(root, make_config)
    for gap in ("", "NA"):  # a gap token in the label column: the same line numbers
        path = write_csv(root / "train.csv", ["x", "label"], [[1, "a"], [2, "b"], [3, "a"], [4, gap], [5, "b"]])
        with pytest.raises(DataError, match=rf"{path} line 5: the label cell \(label\) is empty or one of data.na_"):
            build(root, make_config)


def test_drop_columns_and_columns_named_like_an_index(tmp_path, make_config, caplog):
    root = tmp_path / "drop"
    header = ["", "rownames", "customer_id", "leak", "x", "serial", "label"]
    write_csv(root / "train.csv", header, [[i, i, f"c{i}", i % 2, i % 4, 7 * i, "ab"[i % 2]] for i in range(24)])
    with caplog.at_level(logging.INFO):
        _, _, info = build(root, make_config, **{"data.drop_columns": "leak"})  # a list of one, no brackets
    assert info["feature_columns"] == ["x", "serial"]
    assert info["id_columns"] == ["Unnamed: 0", "rownames", "customer_id", "leak"]
    assert any("'serial' has a different value in every row" in r.getMessage() for r in caplog.records)
    assert not any("'x' has a different value" in r.getMessage() for r in caplog.records)
    # Naming a column's role keeps it a feature; a name the table lacks is logged.
    with caplog.at_level(logging.INFO):
        _, _, info = build(root, make_config, **{"data.drop_columns": ["ID"], "data.numeric_columns": ["rownames"]})
    assert info["feature_columns"] == ["rownames", "leak", "x", "serial"] and "['ID'] not in train.csv" in caplog.text


def test_string_labels_get_ids_in_sorted_order(tmp_path, make_config):
    root = tmp_path / "strings"
    labels = ["zebra", "apple", "mango", "apple", "zebra", "mango"]
    write_csv(root / "train.csv", ["f", "label"], [[i, label] for i, label in enumerate(labels)])
    write_csv(root / "val.csv", ["f", "label"], [[0, "mango"], [1, "zebra"]])
    train_set, val_set, info = build(root, make_config)
    assert info["classes"] == ["apple", "mango", "zebra"]
    assert train_set.labels.tolist() == [2, 0, 1, 0, 2, 1] and val_set.labels.tolist() == [1, 2]


def test_numeric_labels_sort_numerically(tmp_path, make_config):
    root = tmp_path / "numbers"
    labels = ["10", "2", "1", "2", "10", "1"]
    write_csv(root / "train.csv", ["f", "label"], [[i, label] for i, label in enumerate(labels)])
    write_csv(root / "val.csv", ["f", "label"], [[0, "10"]])
    train_set, val_set, info = build(root, make_config)
    assert info["classes"] == ["1", "2", "10"]
    assert train_set.labels.tolist() == [2, 1, 0, 1, 2, 0] and val_set.labels.tolist() == [2]


def test_unknown_val_label_is_an_error(tmp_path, make_config):
    root = tmp_path / "unknown_label"
    write_csv(root / "train.csv", ["f", "label"], [[0, "a"], [1, "b"]])
    write_csv(root / "val.csv", ["f", "label"], [[0, "c"]])
    with pytest.raises(DataError, match="'c'"):
        build(root, make_config)


def test_text_or_infinity_in_a_numeric_column_of_val_is_an_error(tmp_path, make_config):
    root = tmp_path / "text_feature"
    write_csv(root / "train.csv", ["x1", "x2", "label"], [[1, 2, "a"], [3, 4, "b"]])
    path = write_csv(root / "val.csv", ["x1", "x2", "label"], [[1, 2, "a"], [5, "abc", "a"]])
    with pytest.raises(DataError) as err:
        build(root, make_config)
    assert f"{path} line 3: column 'x2' = 'abc' is not a number" in str(err.value)  # the header is line 1
    write_csv(root / "val.csv", ["x1", "x2", "label"], [[1, "inf", "a"]])
    with pytest.raises(DataError, match="column 'x2' holds an infinite value"):
        build(root, make_config)


def test_ragged_rows_and_repeated_names_are_errors(tmp_path, make_config):
    root = tmp_path / "ragged"
    root.mkdir()
    (root / "train.csv").write_text("x,label\n1,a\n2,b,extra\n")
    with pytest.raises(DataError, match="Expected 2 fields in line 3, saw 3"):
        build(root, make_config)
    (root / "train.csv").write_text("x,x,label\n1,2,a\n")
    with pytest.raises(DataError, match=r"names \['x'\] more than once"):
        build(root, make_config)


def test_missing_label_column_is_named(tmp_path, make_config):
    root = tmp_path / "no_label"
    path = write_csv(root / "train.csv", ["x1", "target"], [[1, "a"], [2, "b"]])
    write_csv(root / "val.csv", ["x1", "target"], [[1, "a"]])
    with pytest.raises(DataError) as err:
        build(root, make_config)
    assert "'label'" in str(err.value) and str(path) in str(err.value)
    _, _, info = build(root, make_config, **{"data.label_column": "target"})
    assert info["classes"] == ["a", "b"] and info["feature_columns"] == ["x1"]


def test_val_columns_are_matched_by_name(tmp_path, make_config):
    root = tmp_path / "reordered"
    write_csv(root / "train.csv", ["x1", "c", "x2", "label"], [[0, "u", 10, "a"], [2, "v", 30, "b"]])
    write_csv(root / "val.csv", ["label", "x2", "extra", "c", "x1"], [["a", 10, 1, "u", 0], ["b", 30, 2, "v", 2]])
    train_set, val_set, _ = build(root, make_config)
    assert torch.equal(val_set.features, train_set.features)
    write_csv(root / "val.csv", ["x1", "x3", "label"], [[0, 10, "a"]])
    with pytest.raises(DataError, match="has no column 'x2', 'c'"):
        build(root, make_config)


def test_val_split_from_val_fraction_is_disjoint_seeded_and_sized(tmp_path, make_config):
    root = tmp_path / "no_val"
    write_csv(root / "train.csv", ["n", "label"], [[i, "ab"[i % 2]] for i in range(20)])

    def split(seed, fraction=0.25):
        train_set, val_set, info = build(root, make_config, **{"seed": seed, "data.val_fraction": fraction})
        n = numeric_info(info, "n")  # undo the standardisation to get the row numbers back
        rows = [(d.features[:, 0] * n["std"] + n["mean"]).round().int().tolist() for d in (train_set, val_set)]
        return [sorted(ids) for ids in rows]

    train, val = split(seed=1)
    assert len(val) == 5 and len(train) == 15 and sorted(train + val) == list(range(20))
    assert split(seed=1) == [train, val]  # the same seed gives the same split
    assert split(seed=2)[1] != val
    assert len(split(seed=1, fraction=0.5)[1]) == 10
    # Statistics come from the train part only: its mean, not the whole file's.
    _, _, info = build(root, make_config, **{"seed": 1, "data.val_fraction": 0.25})
    assert numeric_info(info, "n")["mean"] == pytest.approx(sum(train) / len(train))


def test_preprocessing_saved_in_a_checkpoint_is_reused(tmp_path, make_config):
    first = tmp_path / "first"
    write_csv(first / "train.csv", ["x", "color", "label"], [[0.0, "red", "a"], [10.0, "", "b"], [20.0, "blue", "c"]])
    write_csv(first / "val.csv", ["x", "color", "label"], [[5.0, "red", "a"]])
    _, _, saved = build(first, make_config)
    path = tmp_path / "info.pt"
    torch.save(saved, path)
    saved = torch.load(path, weights_only=True)  # plain types only: a safe load gives it back whole
    other = tmp_path / "other"  # other data with its own statistics and levels, and only some of the classes
    write_csv(other / "train.csv", ["color", "x", "label"], [["green", 1000.0, "c"], ["green", 3000.0, "c"]])
    write_csv(other / "val.csv", ["color", "x", "label"], [["blue", 20.0, "c"], ["green", math.nan, "a"]])
    _, val_set, info = build(other, make_config, saved)
    assert info["classes"] == ["a", "b", "c"] and info["num_classes"] == 3
    assert info["numeric"] == saved["numeric"] and info["categorical"] == saved["categorical"]
    x = saved["numeric"][0]
    expected = [[(20.0 - x["mean"]) / x["std"], 0, 1, 0], [(x["median"] - x["mean"]) / x["std"], 0, 0, 0]]
    assert torch.allclose(val_set.features, torch.tensor(expected))  # "nan" is a gap; green was never seen
    assert val_set.labels.tolist() == [2, 0]
    with pytest.raises(DataError, match="train it again"):
        build(other, make_config, {"classes": ["a"], "mean": [0.0], "std": [1.0], "feature_columns": ["x"]})


def test_missing_root_is_an_error_naming_it(tmp_path, make_config):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere"):
        build_dataloaders(make_config(**{"data.root": missing}))
    assert not missing.exists()  # only the shipped default root gets sample data
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="train.csv"):
        build_dataloaders(make_config(**{"data.root": tmp_path / "empty"}))


def test_header_only_csv_is_an_error(tmp_path, make_config):
    path = write_csv(tmp_path / "header_only" / "train.csv", ["x", "label"], [])
    with pytest.raises(DataError, match="no rows"):
        build(path.parent, make_config)


def test_default_root_gets_the_sample_written(tmp_path, make_config, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    cfg = make_config(**{"data.root": SAMPLE_DATA_ROOT})
    with caplog.at_level(logging.INFO):
        train_loader, val_loader, info = build_dataloaders(cfg)
    root = tmp_path / SAMPLE_DATA_ROOT
    assert (root / "train.csv").is_file() and (root / "val.csv").is_file()
    assert info["classes"] == sorted(CLASS_CENTRES)
    assert len(train_loader.dataset) > 0 and len(val_loader.dataset) > 0
    assert "sample" in caplog.text
    assert not list(tmp_path.glob("data/.*"))  # no temp folder left behind
    # The sample is a table as they come: an id, the label not last, gaps, a one-hot and an embedded column.
    rows = read_rows(root / "train.csv")
    assert list(rows[0])[:2] == ["id", "label"] and any(row[c] == "" for row in rows for c in ("x1", "color"))
    assert info["embeddings"] and any(c["missing_indicator"] for c in info["numeric"])


def test_write_sample_is_reproducible(tmp_path):
    write_sample(tmp_path / "a", train_rows=9, val_rows=3, seed=3)
    write_sample(tmp_path / "b", train_rows=9, val_rows=3, seed=3)
    for name in ("train.csv", "val.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_loader_with_worker_processes_gives_the_same_batches(make_config):
    _, val_serial, _ = build_dataloaders(make_config())
    _, val_workers, _ = build_dataloaders(make_config(**{"data.num_workers": 2}))
    serial, parallel = list(val_serial), list(val_workers)
    assert len(serial) == len(parallel)
    for (x0, y0), (x1, y1) in zip(serial, parallel, strict=True):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)


def test_the_test_split_is_optional_and_changes_no_training(tmp_path, cli_overrides, data_root, capsys):
    check_optional_test_split(tmp_path, cli_overrides, data_root, capsys)


def test_a_test_label_train_lacks_stops_training_before_it_starts(tmp_path, cli_overrides, data_root, capsys):
    def add_class(root):
        with open(root / "test.csv", newline="", encoding="utf-8") as file:
            header, first = list(csv.reader(file))[:2]
        first[header.index("label")] = "hexagon"
        write_csv(root / "test.csv", header, [first])
        return "hexagon"

    check_unknown_test_class_stops_training_before_it_starts(tmp_path, cli_overrides, data_root, capsys, add_class)


def test_predictions_carry_the_id_columns_and_name_rows_as_errors_do(trained_run, data_root, tmp_path):
    import predict

    records = read_rows(data_root / "val.csv")
    output = tmp_path / "predictions.csv"
    assert predict.main([str(trained_run), str(data_root / "val.csv"), "--output", str(output)]) == 0
    rows = read_rows(output)
    assert [row["id"] for row in rows] == [record["id"] for record in records]  # joined back by id
    assert [row["input"] for row in rows] == [f"{data_root / 'val.csv'}:{line}" for line in range(2, len(rows) + 2)]
    evaluated = read_rows(trained_run / "eval" / "val" / "predictions.csv")  # written at the end of training
    assert {row["source"]: row["id"] for row in evaluated} == {
        f"val.csv:{line}": record["id"] for line, record in enumerate(records, start=2)
    }
    # An error names a row by the same number: the 4th row is line 5, as predictions call it.
    header = list(records[0])
    bad = [[record[c] if (i, c) != (3, "x3") else "oops" for c in header] for i, record in enumerate(records)]
    path = write_csv(tmp_path / "bad.csv", header, bad)
    with pytest.raises(DataError, match=r"line 5: column 'x3' = 'oops' is not a number\. .*data\.na_values"):
        predict.main([str(trained_run), str(path), "--output", str(tmp_path / "out.csv")])
