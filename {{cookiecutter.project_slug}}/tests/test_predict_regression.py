"""predict.py for numbers: a `prediction` column in the target's units (one column per target with several), the
evaluation report's numbers for the same rows, the input's id column carried."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from conftest import checkpoint_model

import predict
import train


def read_csv(path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        return reader.fieldnames, list(reader)


def column(path, name: str) -> np.ndarray:
    return np.array([float(row[name]) for row in read_csv(path)[1]])


def raw_outputs(checkpoint_path) -> np.ndarray:
    """The model's standardised outputs over the val split, in file order, through the training pipeline."""
    model, val_loader, _ = checkpoint_model(checkpoint_path)
    with torch.inference_mode():
        return torch.cat([model(inputs) for inputs, _ in val_loader]).double().numpy()


def test_predictions_are_prices_as_the_report_has_them_with_the_ids(trained_run, data_root, tmp_path):
    val_csv = data_root / "val.csv"
    names = [f"{val_csv}:{line}" for line in range(2, len(column(val_csv, "price")) + 2)]  # line 1: the header
    output = tmp_path / "predictions.csv"
    assert predict.main([str(trained_run), str(val_csv), "--batch-size", "7", "--output", str(output)]) == 0
    header, rows = read_csv(output)
    assert header == ["input", "id", "prediction"]  # id: the sample's id column, carried to join on
    assert [row["input"] for row in rows] == names
    with open(val_csv, newline="", encoding="utf-8") as file:
        assert [row["id"] for row in rows] == [line["id"] for line in csv.DictReader(file)]

    # In price units: the standardised outputs times the train std plus the train mean (NumPy, from train.csv).
    train_prices = column(data_root / "train.csv", "price")
    expected = raw_outputs(trained_run / "checkpoints" / "best.pt")[:, 0] * train_prices.std() + train_prices.mean()
    predicted = np.array([float(row["prediction"]) for row in rows])
    np.testing.assert_allclose(predicted, expected, rtol=1e-5)
    # The report of best.pt at the end of training: the same number for the same id.
    report_header, report = read_csv(trained_run / "eval" / "val" / "predictions.csv")
    assert report_header[:6] == ["index", "source", "id", "target", "prediction", "residual"]
    by_id = {row["id"]: float(row["prediction"]) for row in report}
    assert sorted(by_id) == sorted(row["id"] for row in rows)
    for row in rows:
        assert float(row["prediction"]) == pytest.approx(by_id[row["id"]], rel=1e-5), row["id"]
    rmse = math.sqrt(np.mean((predicted - column(val_csv, "price")) ** 2))
    report_json = json.loads((trained_run / "eval" / "val" / "report.json").read_text(encoding="utf-8"))
    assert rmse == pytest.approx(report_json["rmse"], rel=1e-4)  # against the CSV's own prices


def test_several_targets_get_a_column_each_in_their_own_units(cli_overrides, data_root, tmp_path):
    targets = ["price", "noise"]  # the sample's `noise` as a second target (it has no gaps)
    assert train.main(cli_overrides(run_name="two", **{"data.label_column": targets})) == 0
    run_dir = tmp_path / "runs" / "two"
    output = tmp_path / "predictions.csv"
    assert predict.main([str(run_dir), str(data_root / "val.csv"), "--output", str(output)]) == 0
    header, rows = read_csv(output)
    assert header == ["input", "id", *targets]
    outputs = raw_outputs(run_dir / "checkpoints" / "best.pt")
    for j, name in enumerate(targets):
        train_values = column(data_root / "train.csv", name)
        expected = outputs[:, j] * train_values.std() + train_values.mean()
        np.testing.assert_allclose([float(row[name]) for row in rows], expected, rtol=1e-5, atol=1e-5)
    prices, noise = (np.array([float(row[name]) for row in rows]) for name in targets)
    assert prices.min() > 100 and np.abs(noise).max() < 10  # each in its own units
