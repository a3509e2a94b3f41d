"""Tabular CSV data: layout, shapes, dtypes, standardisation with train statistics, labels and clear errors."""

import csv
import logging
from pathlib import Path

import pytest
import torch

from {{ cookiecutter.package_name }}.data import DataError, build_dataloaders, build_datasets
from {{ cookiecutter.package_name }}.data.common import SAMPLE_DATA_ROOT
from {{ cookiecutter.package_name }}.data.sample import CLASS_CENTRES, COLUMNS, write_sample


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
    return [str(val_csv)], [f"{val_csv}:{row}" for row in range(1, len(val_set) + 1)]


def mixed_predict_inputs(data_root: Path, names: list[str], tmp_path: Path):
    """(inputs, the names predict.py must give, in order; pairs of names that must get the same numbers).

    Columns by name in any order, an extra id column, no label column, several files: the same numbers as val.csv.
    """
    records = read_rows(data_root / "val.csv")
    columns = [c for c in records[0] if c != "label"]
    first_rows = [[i, *(r[c] for c in reversed(columns))] for i, r in enumerate(records[:5])]
    first = write_csv(tmp_path / "first.csv", ["id", *reversed(columns)], first_rows)
    second = write_csv(tmp_path / "second.csv", columns, [[r[c] for c in columns] for r in records[5:7]])
    expected = [f"{first}:{i}" for i in range(1, 6)] + [f"{second}:1", f"{second}:2", *names]
    same = list(zip(expected[:7], names[:7], strict=True))
    return [str(first), str(second), str(data_root / "val.csv")], expected, same


def bad_predict_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    """(inputs, the error they must raise, as a regex) for predict.py."""
    columns = ["x1", "x2", "x3", "income", "noise"]
    cases = [
        (["x1", "x2", "x3", "noise", "label"], [[0, 0, 0, 0, "alpha"]], r"no feature column 'income'; .*\['x1'"),
        (columns, [[0, 0, "oops", 0, 0]], r"line 2: column 'x3' = 'oops' is not a number"),
        (columns, [], "no rows found"),
    ]
    found = [([str(write_csv(tmp_path / f"bad{i}.csv", *case[:2]))], case[2]) for i, case in enumerate(cases)]
    return [*found, ([str(tmp_path / "missing.csv")], "does not exist"), ([str(tmp_path)], "is a folder")]


def cli_bad_predict_input(tmp_path: Path) -> tuple[list[str], str]:
    """(predict.py arguments, how its one-line error starts)."""
    bad = write_csv(tmp_path / "bad.csv", ["x1", "x2", "x3", "label"], [[0, 0, 0, "alpha"]])
    return [str(bad)], f"error: {bad} has no feature column 'income', 'noise'"


def raw(dataset, info) -> torch.Tensor:
    """Undo the standardisation (float64 to compare exactly enough)."""
    return dataset.features.double() * torch.tensor(info["std"]) + torch.tensor(info["mean"])


def test_sample_data_layout_and_batches(data_root, make_config):
    for split, count in (("train", 60), ("val", 30)):
        rows = read_rows(data_root / f"{split}.csv")
        assert len(rows) == count
        assert list(rows[0]) == [*COLUMNS, "label"]
        assert {row["label"] for row in rows} == set(CLASS_CENTRES)
    cfg = make_config()
    train_loader, val_loader, info = build_dataloaders(cfg)
    assert info["classes"] == sorted(CLASS_CENTRES)
    assert info["feature_columns"] == COLUMNS
    assert info["num_features"] == len(COLUMNS) and info["num_classes"] == len(CLASS_CENTRES)
    assert len(train_loader.dataset) == 60 and len(val_loader.dataset) == 30
    inputs, targets = next(iter(train_loader))
    assert inputs.shape == (cfg.data.batch_size, len(COLUMNS))
    assert inputs.dtype == torch.float32
    assert targets.dtype == torch.int64
    assert int(targets.min()) >= 0 and int(targets.max()) < len(CLASS_CENTRES)
    assert sum(len(t) for _, t in val_loader) == 30  # val keeps every sample


def test_labels_map_row_by_row(data_root, make_config):
    train_set, val_set, info = build_datasets(make_config())
    for dataset, split in ((train_set, "train"), (val_set, "val")):
        labels = [row["label"] for row in read_rows(data_root / f"{split}.csv")]
        assert [info["classes"][i] for i in dataset.labels.tolist()] == labels
        x, y = dataset[0]
        assert x.dtype == torch.float32 and x.shape == (len(COLUMNS),)
        assert y.dtype == torch.int64 and y.shape == ()


def test_standardised_with_train_statistics(tmp_path, make_config):
    root = tmp_path / "shifted"
    train = [[i, 1000.0 + 50 * i, 7.0, "a" if i % 2 else "b"] for i in range(20)]
    val = [[100.0 + i, -3.0, 7.0, "a"] for i in range(5)]
    write_csv(root / "train.csv", ["x", "big", "const", "label"], train)
    write_csv(root / "val.csv", ["x", "big", "const", "label"], val)
    train_set, val_set, info = build_datasets(make_config(**{"data.root": root}))
    x = train_set.features
    assert torch.allclose(x[:, :2].mean(dim=0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(x[:, :2].std(dim=0, unbiased=False), torch.ones(2), atol=1e-5)
    assert torch.equal(x[:, 2], torch.zeros(20))  # a constant column: no division by zero
    assert info["std"][2] == 1.0
    train_x = torch.tensor([row[:3] for row in train], dtype=torch.float64)
    assert info["mean"] == pytest.approx(train_x.mean(dim=0).tolist())
    assert info["std"][:2] == pytest.approx(train_x[:, :2].std(dim=0, unbiased=False).tolist())
    # val is scaled with *train's* mean/std, so its shift stays visible (its own stats would give mean 0)
    expected = (torch.tensor([row[:3] for row in val], dtype=torch.float64) - train_x.mean(dim=0)) / torch.tensor(
        info["std"]
    )
    assert torch.allclose(val_set.features.double(), expected, atol=1e-5)
    assert val_set.features[:, 0].mean() > 5


def test_string_labels_get_ids_in_sorted_order(tmp_path, make_config):
    root = tmp_path / "strings"
    labels = ["zebra", "apple", "mango", "apple", "zebra", "mango"]
    write_csv(root / "train.csv", ["f", "label"], [[i, label] for i, label in enumerate(labels)])
    write_csv(root / "val.csv", ["f", "label"], [[0, "mango"], [1, "zebra"]])
    train_set, val_set, info = build_datasets(make_config(**{"data.root": root}))
    assert info["classes"] == ["apple", "mango", "zebra"]
    assert train_set.labels.tolist() == [2, 0, 1, 0, 2, 1]
    assert val_set.labels.tolist() == [1, 2]


def test_numeric_labels_sort_numerically(tmp_path, make_config):
    root = tmp_path / "numbers"
    labels = ["10", "2", "1", "2", "10", "1"]
    write_csv(root / "train.csv", ["f", "label"], [[i, label] for i, label in enumerate(labels)])
    write_csv(root / "val.csv", ["f", "label"], [[0, "10"]])
    train_set, val_set, info = build_datasets(make_config(**{"data.root": root}))
    assert info["classes"] == ["1", "2", "10"]
    assert train_set.labels.tolist() == [2, 1, 0, 1, 2, 0]
    assert val_set.labels.tolist() == [2]


def test_unknown_val_label_is_an_error(tmp_path, make_config):
    root = tmp_path / "unknown_label"
    write_csv(root / "train.csv", ["f", "label"], [[0, "a"], [1, "b"]])
    write_csv(root / "val.csv", ["f", "label"], [[0, "c"]])
    with pytest.raises(DataError, match="'c'"):
        build_datasets(make_config(**{"data.root": root}))


def test_non_numeric_feature_names_file_line_and_column(tmp_path, make_config):
    root = tmp_path / "text_feature"
    path = write_csv(root / "train.csv", ["x1", "x2", "label"], [[1, 2, "a"], [3, 4, "b"], [5, "abc", "a"]])
    with pytest.raises(DataError) as err:
        build_datasets(make_config(**{"data.root": root}))
    message = str(err.value)
    assert str(path) in message
    assert "line 4" in message  # the header is line 1
    assert "'x2'" in message and "'abc'" in message


def test_missing_label_column_is_named(tmp_path, make_config):
    root = tmp_path / "no_label"
    path = write_csv(root / "train.csv", ["x1", "target"], [[1, "a"], [2, "b"]])
    write_csv(root / "val.csv", ["x1", "target"], [[1, "a"]])
    with pytest.raises(DataError) as err:
        build_datasets(make_config(**{"data.root": root}))
    assert "'label'" in str(err.value) and str(path) in str(err.value)
    train_set, _, info = build_datasets(make_config(**{"data.root": root, "data.label_column": "target"}))
    assert info["classes"] == ["a", "b"] and info["feature_columns"] == ["x1"]


def test_val_columns_are_matched_by_name(tmp_path, make_config):
    root = tmp_path / "reordered"
    write_csv(root / "train.csv", ["x1", "x2", "label"], [[0, 10, "a"], [2, 30, "b"]])
    write_csv(root / "val.csv", ["label", "x2", "x1"], [["a", 10, 0], ["b", 30, 2]])
    train_set, val_set, _ = build_datasets(make_config(**{"data.root": root}))
    assert torch.allclose(val_set.features, train_set.features)
    write_csv(root / "val.csv", ["x1", "x3", "label"], [[0, 10, "a"]])
    with pytest.raises(DataError, match="x3"):
        build_datasets(make_config(**{"data.root": root}))


def test_val_split_from_val_fraction_is_disjoint_seeded_and_sized(tmp_path, make_config):
    root = tmp_path / "no_val"
    write_csv(root / "train.csv", ["id", "label"], [[i, "ab"[i % 2]] for i in range(20)])

    def split(seed, fraction=0.25):
        cfg = make_config(**{"data.root": root, "seed": seed, "data.val_fraction": fraction})
        train_set, val_set, info = build_datasets(cfg)
        ids = [sorted(round(v) for v in raw(dataset, info)[:, 0].tolist()) for dataset in (train_set, val_set)]
        return ids[0], ids[1]

    train, val = split(seed=1)
    assert len(val) == 5 and len(train) == 15
    assert sorted(train + val) == list(range(20))
    assert split(seed=1) == (train, val)  # the same seed gives the same split
    assert split(seed=2)[1] != val
    assert len(split(seed=1, fraction=0.5)[1]) == 10


def test_data_info_from_a_checkpoint_is_reused(tmp_path, make_config):
    first = tmp_path / "first"
    write_csv(first / "train.csv", ["x", "label"], [[0.0, "a"], [10.0, "b"], [20.0, "c"]])
    write_csv(first / "val.csv", ["x", "label"], [[5.0, "a"]])
    _, _, saved = build_datasets(make_config(**{"data.root": first}))
    other = tmp_path / "other"  # other data with its own statistics and only some of the classes
    write_csv(other / "train.csv", ["x", "label"], [[1000.0, "c"], [3000.0, "c"]])
    write_csv(other / "val.csv", ["x", "label"], [[20.0, "c"], [0.0, "a"]])
    _, val_set, info = build_datasets(make_config(**{"data.root": other}), saved)
    assert info["classes"] == ["a", "b", "c"] and info["num_classes"] == 3
    assert info["mean"] == saved["mean"] and info["std"] == saved["std"]
    expected = (torch.tensor([[20.0], [0.0]]) - saved["mean"][0]) / saved["std"][0]
    assert torch.allclose(val_set.features, expected, atol=1e-6)
    assert val_set.labels.tolist() == [2, 0]


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
        build_datasets(make_config(**{"data.root": path.parent}))


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
