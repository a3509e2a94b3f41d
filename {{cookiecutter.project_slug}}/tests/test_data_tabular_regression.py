"""Tabular CSV data for regression: the sample, numeric targets standardised with train's statistics, errors."""

import csv
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from {{ cookiecutter.package_name }}.data import DataError, build_dataloaders, build_datasets
from {{ cookiecutter.package_name }}.data.sample import COLUMNS
from {{ cookiecutter.package_name }}.models import build_model

FEATURES = [c for c in COLUMNS if c not in ("id", "price")]  # the sample's feature columns (id is dropped)


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


def column(path: Path, name: str) -> np.ndarray:
    """float64 values of one column of a CSV, parsed here with numpy alone."""
    return np.array([float(row[name]) for row in read_rows(path)])


def build(root: Path, make_config, data_info=None, **settings):
    return build_datasets(make_config(**{"data.root": root, **settings}), data_info)


# What predict.py takes here: CSV files. tests/test_predict.py and tests/test_export.py run these.


def val_inputs(data_root: Path, val_set, tmp_path: Path) -> tuple[list[str], list[str]]:
    """(predict.py inputs, the `input` name predict.py gives each val sample, in val order)."""
    val_csv = data_root / "val.csv"
    return [str(val_csv)], [f"{val_csv}:{line}" for line in range(2, len(val_set) + 2)]  # line 1: the header


def mixed_predict_inputs(data_root: Path, names: list[str], tmp_path: Path):
    """(inputs, the names predict.py must give, in order; pairs of names that must get the same numbers).

    Columns by name in any order, an extra id column, no target column, several files: the same numbers as val.csv.
    """
    records = read_rows(data_root / "val.csv")
    columns = [c for c in records[0] if c != "price"]
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
    bad = write_csv(tmp_path / "bad.csv", ["x1", "x2", "x3", "price"], [[0, 0, 0, 250.0]])
    return [str(bad)], f"error: {bad} has no column 'income', 'noise'"


def test_sample_data_layout_and_batches(data_root, make_config):
    for split, count in (("train", 60), ("val", 30)):
        rows = read_rows(data_root / f"{split}.csv")
        assert len(rows) == count and list(rows[0]) == COLUMNS
    cfg = make_config()
    train_loader, val_loader, info = build_dataloaders(cfg)
    assert info["label_column"] == ["price"] and info["num_outputs"] == 1
    assert [target["name"] for target in info["targets"]] == ["price"]
    assert sorted(info["feature_columns"]) == sorted(FEATURES)  # id dropped (data.drop_columns), price apart
    assert len(train_loader.dataset) == 60 and len(val_loader.dataset) == 30
    inputs, targets = next(iter(train_loader))
    assert inputs.shape == (cfg.data.batch_size, info["num_features"]) and inputs.dtype == torch.float32
    assert targets.shape == (cfg.data.batch_size, 1) and targets.dtype == torch.float32
    assert sum(len(t) for _, t in val_loader) == 30  # val keeps every sample
    # Standardised: the train targets have mean 0 and std 1, and each is (price - mean) / std of its own row.
    labels = train_loader.dataset.labels.numpy().astype(np.float64)
    assert labels.shape == (60, 1)
    assert abs(labels.mean()) < 1e-6 and labels.std() == pytest.approx(1.0, abs=1e-6)
    price = column(data_root / "train.csv", "price")
    assert labels[:, 0] == pytest.approx((price - price.mean()) / price.std(), abs=1e-6)


def test_target_statistics_equal_numpy_on_the_train_prices(data_root, make_config):
    _, _, info = build_datasets(make_config())
    price = column(data_root / "train.csv", "price")
    (target,) = info["targets"]
    assert set(target) == {"name", "mean", "std"}
    assert target["mean"] == pytest.approx(price.mean(), rel=1e-12)
    assert target["std"] == pytest.approx(price.std(), rel=1e-12)  # numpy's default: the population std (ddof=0)
    assert target["std"] != pytest.approx(price.std(ddof=1), rel=1e-6)  # 60 rows: the two differ by 0.8%


def test_several_targets_each_standardised_with_its_own_statistics(tmp_path, make_config):
    root = tmp_path / "two"
    rng = np.random.default_rng(0)
    a, b = 1000 + 50 * rng.standard_normal(20), -3 + 0.2 * rng.standard_normal(20)  # very different scales
    rows = [[i % 5, f"{a[i]:.6f}", "red" if i % 2 else "blue", f"{b[i]:.6f}"] for i in range(20)]
    write_csv(root / "train.csv", ["x", "a", "color", "b"], rows)
    write_csv(root / "val.csv", ["b", "x", "color", "a"], [[r[3], r[0], r[2], r[1]] for r in rows[:4]])
    cfg = make_config(**{"data.root": root, "data.label_column": ["a", "b"]})
    train_set, val_set, info = build_datasets(cfg)
    assert info["label_column"] == ["a", "b"] and info["num_outputs"] == 2
    assert info["feature_columns"] == ["x", "color"]  # neither target is a feature
    values = np.array([[float(r[1]), float(r[3])] for r in rows])
    assert [t["name"] for t in info["targets"]] == ["a", "b"]
    assert [t["mean"] for t in info["targets"]] == pytest.approx(values.mean(0), rel=1e-12)
    assert [t["std"] for t in info["targets"]] == pytest.approx(values.std(0), rel=1e-12)
    labels = train_set.labels.numpy().astype(np.float64)
    assert labels.shape == (20, 2) and train_set.labels.dtype == torch.float32
    assert labels.mean(0) == pytest.approx([0, 0], abs=1e-6) and labels.std(0) == pytest.approx([1, 1], abs=1e-6)
    assert labels == pytest.approx((values - values.mean(0)) / values.std(0), abs=1e-6)
    assert val_set.labels.numpy() == pytest.approx(labels[:4], abs=1e-6)  # val's columns matched by name
    assert build_model(cfg, info)(train_set.features[:4]).shape == (4, 2)  # one output per target


def test_a_target_cell_that_is_not_a_number_names_the_file_line_and_value(tmp_path, make_config):
    root = tmp_path / "words"
    rows = [[i, 100.0 + i] for i in range(6)]
    rows[3][1] = "about 300"  # the 4th row: line 5 (the header is line 1)
    path = write_csv(root / "train.csv", ["x", "price"], rows)
    with pytest.raises(DataError, match=rf"{re.escape(str(path))} line 5: the target 'price' = 'about 300' is not a"):
        build(root, make_config)
    # In val.csv, and in a train split held out without one: the line is still the file's.
    write_csv(root / "train.csv", ["x", "price"], [[i, 100.0 + i] for i in range(6)])
    path = write_csv(root / "val.csv", ["x", "price"], [[0, 1.5], [1, 2.5], [2, "n.a."]])
    with pytest.raises(DataError, match=rf"{re.escape(str(path))} line 4: the target 'price' = 'n.a.'"):
        build(root, make_config)
    path.unlink()
    rows = [[i, 100.0 + i] for i in range(20)]
    rows[17][1] = "$117"
    path = write_csv(root / "train.csv", ["x", "price"], rows)
    for fraction in (0.2, 0.8):  # row 18 lands in the held-out val part, or in train
        with pytest.raises(DataError, match=rf"{re.escape(str(path))} line 19: the target 'price' = '\$117'"):
            build(root, make_config, **{"data.val_fraction": fraction})


def test_a_constant_target_warns_naming_it(tmp_path, make_config, caplog):
    root = tmp_path / "constant"
    write_csv(root / "train.csv", ["x", "price", "rent"], [[i, 7.5, 10.0 * i] for i in range(8)])
    write_csv(root / "val.csv", ["x", "price", "rent"], [[1, 9.0, 3.0]])
    with caplog.at_level(logging.INFO):
        train_set, val_set, info = build(root, make_config, **{"data.label_column": ["price", "rent"]})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'price'" in message and "train.csv" in message for message in warnings), warnings
    assert not any("'rent'" in message for message in warnings)
    assert info["targets"][0] == {"name": "price", "mean": 7.5, "std": 1.0}  # no division by zero
    assert torch.equal(train_set.labels[:, 0], torch.zeros(8))
    assert val_set.labels[0, 0].item() == pytest.approx(1.5)  # 9.0 - 7.5, in units of 1


def test_a_target_column_missing_from_the_csv_is_a_clear_error(tmp_path, make_config):
    root = tmp_path / "no_price"
    path = write_csv(root / "train.csv", ["x", "cost"], [[1, 2.0], [2, 3.0]])
    write_csv(root / "val.csv", ["x", "cost"], [[1, 2.0]])
    with pytest.raises(DataError) as err:
        build(root, make_config)
    assert "'price'" in str(err.value) and str(path) in str(err.value) and "data.label_column" in str(err.value)
    with pytest.raises(DataError, match="no label column 'rent'"):  # one of several
        build(root, make_config, **{"data.label_column": ["cost", "rent"]})
    _, _, info = build(root, make_config, **{"data.label_column": ["cost"]})
    assert info["targets"][0]["name"] == "cost" and info["feature_columns"] == ["x"]


def test_val_targets_are_standardised_with_train_statistics(tmp_path, make_config):
    root = tmp_path / "shifted"
    train = [[i, 100.0 + 4.0 * i] for i in range(10)]
    val = [[i, 500.0 + 40.0 * i] for i in range(5)]  # its own mean and std are far from train's
    write_csv(root / "train.csv", ["x", "price"], train)
    write_csv(root / "val.csv", ["x", "price"], val)
    _, val_set, info = build(root, make_config)
    price = np.array([row[1] for row in train])
    expected = (np.array([row[1] for row in val]) - price.mean()) / price.std()
    assert val_set.labels[:, 0].numpy() == pytest.approx(expected, rel=1e-6)
    assert val_set.labels.mean() > 5  # with its own statistics it would be 0


def test_a_checkpoints_data_info_is_reused_exactly(tmp_path, make_config):
    first = tmp_path / "first"
    write_csv(first / "train.csv", ["x", "a", "b"], [[0.0, 10.0, -1.0], [10.0, 30.0, -2.0], [20.0, 80.0, -6.0]])
    write_csv(first / "val.csv", ["x", "a", "b"], [[5.0, 20.0, -3.0]])
    _, _, saved = build(first, make_config, **{"data.label_column": ["a", "b"]})
    path = tmp_path / "info.pt"
    torch.save(saved, path)
    saved = torch.load(path, weights_only=True)  # plain types only: a safe load gives it back whole
    other = tmp_path / "other"  # other data with other statistics; the config's default target (price) is absent
    write_csv(other / "train.csv", ["b", "x", "a"], [[100.0, 1000.0, 0.0], [300.0, 3000.0, 1.0]])
    write_csv(other / "val.csv", ["a", "b", "x"], [[60.0, -4.0, 20.0]])
    train_set, val_set, info = build(other, make_config, saved)
    assert info == saved  # targets, label columns and preprocessing as trained
    a, b = saved["targets"]
    expected = [(60.0 - a["mean"]) / a["std"], (-4.0 - b["mean"]) / b["std"]]
    assert val_set.labels[0].tolist() == pytest.approx(expected, rel=1e-6)
    assert train_set.labels[:, 1].tolist() == pytest.approx([(v - b["mean"]) / b["std"] for v in (100.0, 300.0)])
