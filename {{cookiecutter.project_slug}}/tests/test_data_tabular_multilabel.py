"""Tabular CSV data for multi-label: the sample, both label layouts (a tag column, several 0/1 columns), rows
without labels, label order, train's labels for every split, the warnings and the errors."""

import csv
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from {{ cookiecutter.package_name }}.config import ConfigError
from {{ cookiecutter.package_name }}.data import DataError, build_dataloaders, build_datasets
from {{ cookiecutter.package_name }}.data.sample import COLUMNS, RULES
from {{ cookiecutter.package_name }}.models import build_model

FEATURES = [c for c in COLUMNS if c not in ("id", "tags")]  # the sample's feature columns (id is dropped)


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


def build(root: Path, make_config, data_info=None, **settings):
    return build_datasets(make_config(**{"data.root": root, **settings}), data_info)


# What predict.py takes here: CSV files. tests/test_predict.py and tests/test_export.py run these.


def val_inputs(data_root: Path, val_set, tmp_path: Path) -> tuple[list[str], list[str]]:
    """(predict.py inputs, the `input` name predict.py gives each val sample, in val order)."""
    val_csv = data_root / "val.csv"
    return [str(val_csv)], [f"{val_csv}:{line}" for line in range(2, len(val_set) + 2)]  # line 1: the header


def mixed_predict_inputs(data_root: Path, names: list[str], tmp_path: Path):
    """(inputs, the names predict.py must give, in order; pairs of names that must get the same numbers).

    Columns by name in any order, an extra id column, no label column, several files: the same numbers as val.csv.
    """
    records = read_rows(data_root / "val.csv")
    columns = [c for c in records[0] if c != "tags"]
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
    bad = write_csv(tmp_path / "bad.csv", ["x1", "x2", "x3", "tags"], [[0, 0, 0, "sale"]])
    return [str(bad)], f"error: {bad} has no column 'income', 'noise'"


def test_sample_data_layout_and_batches(data_root, make_config):
    for split, count in (("train", 60), ("val", 30)):
        rows = read_rows(data_root / f"{split}.csv")
        assert len(rows) == count and list(rows[0]) == COLUMNS
    cfg = make_config()
    train_loader, val_loader, info = build_dataloaders(cfg)
    assert info["label_column"] == ["tags"] and info["label_separator"] == ";"
    assert info["labels"] == sorted(RULES) and info["num_outputs"] == len(RULES)
    assert sorted(info["feature_columns"]) == sorted(FEATURES)  # id dropped (data.drop_columns), tags apart
    inputs, targets = next(iter(train_loader))
    assert inputs.shape == (cfg.data.batch_size, info["num_features"]) and inputs.dtype == torch.float32
    assert targets.shape == (cfg.data.batch_size, len(RULES)) and targets.dtype == torch.float32
    # Each row's 0/1 per label, read apart from the project: the tags of its own line.
    rows = read_rows(data_root / "train.csv")
    expected = [[float(name in row["tags"].split(";")) for name in info["labels"]] for row in rows]
    assert train_loader.dataset.labels.tolist() == expected
    assert info["label_counts"] == np.array(expected).sum(0).astype(int).tolist() and info["train_samples"] == 60
    assert any(not row["tags"] for row in rows)  # rows without tags: valid samples, all zeros
    assert sum(len(t) for _, t in val_loader) == 30  # val keeps every sample


def test_a_tag_column_with_empty_cells_in_a_natural_order(tmp_path, make_config):
    root = tmp_path / "tags"
    rows = [[0.0, "10;b"], [1.0, ""], [2.0, " 2 ; 10 "], [3.0, "b"], [4.0, "NA"], [5.0, "2;;b"]]
    write_csv(root / "train.csv", ["x", "tags"], rows)
    write_csv(root / "val.csv", ["tags", "x"], [["", 1.0], ["b;2", 2.0]])
    train_set, val_set, info = build(root, make_config)
    assert info["labels"] == ["10", "2", "b"]  # sort_labels: text order when not every tag is a number
    assert info["label_counts"] == [2, 2, 3]
    expected = [[1, 0, 1], [0, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0], [0, 1, 1]]  # NA: a gap, no tags
    assert train_set.labels.tolist() == expected
    assert val_set.labels.tolist() == [[0, 0, 0], [0, 1, 1]]  # train's labels, val's columns by name
    write_csv(root / "train.csv", ["x", "tags"], [[0, "10/2"], [1, "2"], [2, "2/10/3"]])
    write_csv(root / "val.csv", ["tags", "x"], [["3/2", 1.0]])
    _, val_set, info = build(root, make_config, **{"data.label_separator": "/"})
    assert info["labels"] == ["2", "3", "10"] and info["label_separator"] == "/"  # all numbers: by value
    assert val_set.labels.tolist() == [[1, 1, 0]]
    with pytest.raises(ConfigError, match="data.label_separator is empty"):
        build(root, make_config, **{"data.label_separator": ""})


def test_several_0_1_columns_in_the_order_given(tmp_path, make_config):
    root = tmp_path / "flags"
    header = ["x", "zeta", "color", "alpha", "mid"]
    rows = [[0, 1, "red", "no", "false"], [1, 0, "blue", "yes", "True"], [2, "1.0", "red", "YES", "0"]]
    write_csv(root / "train.csv", header, rows)
    write_csv(root / "val.csv", ["alpha", "mid", "x", "color", "zeta"], [["0", "1", 5, "red", "1"]])
    cfg = make_config(**{"data.root": root, "data.label_column": ["zeta", "alpha", "mid"]})
    train_set, val_set, info = build_datasets(cfg)
    assert info["labels"] == ["zeta", "alpha", "mid"] and info["feature_columns"] == ["x", "color"]
    assert train_set.labels.tolist() == [[1, 0, 0], [0, 1, 1], [1, 1, 0]]
    assert val_set.labels.tolist() == [[1, 0, 1]]
    assert info["label_counts"] == [2, 2, 1]
    assert build_model(cfg, info)(train_set.features[:2]).shape == (2, 3)  # one output per label


@pytest.mark.parametrize("value", ["2", "maybe", ""])
def test_a_cell_of_a_0_1_column_that_is_neither_names_the_file_line_and_value(value, tmp_path, make_config):
    root = tmp_path / "bad"
    rows = [[i, i % 2, 1 - i % 2] for i in range(6)]
    rows[3][2] = value  # the 4th row: line 5 (the header is line 1)
    path = write_csv(root / "train.csv", ["x", "a", "b"], rows)
    write_csv(root / "val.csv", ["x", "a", "b"], [[0, 1, 0]])
    with pytest.raises(DataError, match=rf"{re.escape(str(path))} line 5: the label 'b' = '{value}' is not 0 or 1"):
        build(root, make_config, **{"data.label_column": ["a", "b"]})


def test_a_tag_train_never_had_is_an_error_naming_it(tmp_path, make_config):
    root = tmp_path / "unknown"
    write_csv(root / "train.csv", ["x", "tags"], [[0, "a;b"], [1, "b"], [2, "a"]])
    path = write_csv(root / "val.csv", ["x", "tags"], [[0, "a"], [1, "b;zebra"]])
    with pytest.raises(DataError, match=rf"{re.escape(str(path))} line 3: the tags \['zebra'\] are not among"):
        build(root, make_config)


def test_the_warnings_name_what_they_are_about(tmp_path, make_config, caplog):
    root = tmp_path / "warn"
    write_csv(root / "train.csv", ["x", "tags"], [[0, "a,b"], [1, "b"], [2, ""], [3, "a,c"]])
    write_csv(root / "val.csv", ["x", "tags"], [[0, "b"]])
    with caplog.at_level(logging.INFO):
        build(root, make_config)  # the cells use "," but data.label_separator is ";"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no row of 'tags' holds more than one tag" in m and "label_separator=';'" in m for m in warnings)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        _, _, info = build(root, make_config, **{"data.label_separator": ","})
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    write_csv(root / "train.csv", ["x", "a", "never", "b"], [[0, 1, 0, 0], [1, 0, 0, 1], [2, 1, 0, 1]])
    write_csv(root / "val.csv", ["x", "a", "never", "b"], [[0, 1, 1, 0]])
    with caplog.at_level(logging.INFO):
        _, val_set, info = build(root, make_config, **{"data.label_column": ["a", "never", "b"]})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "['never'] are never positive in train" in warnings[0]
    assert "undefined" in warnings[0] and info["label_counts"] == [2, 0, 2]


def test_a_checkpoints_data_info_is_reused_exactly(tmp_path, make_config):
    first = tmp_path / "first"
    write_csv(first / "train.csv", ["x", "tags"], [[0.0, "b;a"], [10.0, "c"], [20.0, ""]])
    write_csv(first / "val.csv", ["x", "tags"], [[5.0, "a"]])
    _, _, saved = build(first, make_config)
    path = tmp_path / "info.pt"
    torch.save(saved, path)
    saved = torch.load(path, weights_only=True)  # plain types only: a safe load gives it back whole
    other = tmp_path / "other"  # other rows with fewer tags: the labels and their order stay the checkpoint's
    write_csv(other / "train.csv", ["tags", "x"], [["c", 1.0], ["c", 3.0]])
    write_csv(other / "val.csv", ["x", "tags"], [[2.0, "c;a"]])
    train_set, val_set, info = build(other, make_config, saved)
    assert info == saved and info["labels"] == ["a", "b", "c"]
    assert val_set.labels.tolist() == [[1, 0, 1]] and train_set.labels.tolist() == [[0, 0, 1], [0, 0, 1]]
