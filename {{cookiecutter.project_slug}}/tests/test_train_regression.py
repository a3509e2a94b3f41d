"""Training to predict numbers: the loss on standardised targets, metrics.csv in the targets' units against
scikit-learn and NumPy, each trainer.loss, evaluate.py's numbers, several targets at once."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from conftest import checkpoint_model
from test_train import read_metrics

import evaluate
import train
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint
from {{ cookiecutter.package_name }}.task import EPOCH_FIELDS, MONITORS

# Each trainer.loss per sample, written out: d is the error in train standard deviations.
LOSSES = {
    "mse": lambda d: d**2,
    "huber": lambda d: np.where(np.abs(d) <= 1.0, 0.5 * d**2, np.abs(d) - 0.5),
    "l1": np.abs,
}


def sklearn_metrics():
    return pytest.importorskip("sklearn.metrics", reason='needs scikit-learn: pip install -e ".[dev]"')


def column(path, name: str) -> np.ndarray:
    """A CSV column as float64, read apart from the project's code."""
    with open(path, newline="", encoding="utf-8") as file:
        return np.array([float(row[name]) for row in csv.DictReader(file)])


def val_outputs(checkpoint_path) -> np.ndarray:
    """The model's raw (standardised) outputs over the val split, in file order: (rows, targets)."""
    model, val_loader, _ = checkpoint_model(checkpoint_path)
    with torch.inference_mode():
        return torch.cat([model(inputs) for inputs, _ in val_loader]).double().numpy()


def test_metrics_columns_and_which_way_each_monitor_is_better():
    assert EPOCH_FIELDS == ["train_loss", "train_rmse", "val_loss", "val_mae", "val_rmse", "val_r2"]
    assert MONITORS == {"val_rmse": "min", "val_mae": "min", "val_r2": "max", "val_loss": "min"}  # R2: higher


def test_the_first_epochs_loss_is_near_one_on_standardised_targets(trained_run, data_root):
    rows = read_metrics(trained_run)  # columns: EPOCH_FIELDS (read_metrics checks them)
    train_prices = column(data_root / "train.csv", "price")
    assert train_prices.std() > 40  # in price units the first loss would be in the thousands
    # Standardised targets have variance 1; a fresh model's outputs add about as much.
    assert 0.5 < float(rows[0]["train_loss"]) < 3.0
    for row in rows:  # mse: train_rmse is the root of train_loss, in price units (the train std, ddof 0)
        expected = math.sqrt(float(row["train_loss"])) * train_prices.std()
        assert float(row["train_rmse"]) == pytest.approx(expected, rel=1e-5)


def test_validation_metrics_are_sklearns_in_the_targets_units(trained_run, data_root):
    metrics = sklearn_metrics()
    train_prices, prices = column(data_root / "train.csv", "price"), column(data_root / "val.csv", "price")
    mean, std = train_prices.mean(), train_prices.std()
    outputs = val_outputs(trained_run / "checkpoints" / "last.pt")[:, 0]  # the weights the last row validated
    predicted = outputs * std + mean
    last = read_metrics(trained_run)[-1]
    assert float(last["val_mae"]) == pytest.approx(metrics.mean_absolute_error(prices, predicted), rel=1e-5)
    assert float(last["val_rmse"]) == pytest.approx(math.sqrt(metrics.mean_squared_error(prices, predicted)), rel=1e-5)
    assert float(last["val_r2"]) == pytest.approx(metrics.r2_score(prices, predicted), rel=1e-5, abs=1e-6)
    assert float(last["val_loss"]) == pytest.approx(np.mean((outputs - (prices - mean) / std) ** 2), rel=1e-5)


@pytest.mark.parametrize("loss", list(LOSSES))
def test_each_loss_learns_and_validation_and_evaluate_py_use_it(loss, cli_overrides, data_root, tmp_path, capsys):
    settings = {"trainer.loss": loss, "trainer.epochs": 5, "optim.lr": 0.01}
    assert train.main(cli_overrides(run_name=loss, **settings)) == 0
    run_dir = tmp_path / "runs" / loss
    rows = read_metrics(run_dir)
    rmse = [float(row["val_rmse"]) for row in rows]
    train_prices, prices = column(data_root / "train.csv", "price"), column(data_root / "val.csv", "price")
    baseline = math.sqrt(np.mean((prices - train_prices.mean()) ** 2))  # always predicting the train mean
    assert rmse[-1] < 0.9 * rmse[0] and min(rmse) < 0.85 * baseline  # it learned the prices
    best = rmse.index(min(rmse)) + 1
    assert load_checkpoint(run_dir / "checkpoints" / "best.pt")["epoch"] == best  # trainer.monitor: val_rmse

    standardised = (prices - train_prices.mean()) / train_prices.std()
    errors = val_outputs(run_dir / "checkpoints" / "last.pt")[:, 0] - standardised
    assert float(rows[-1]["val_loss"]) == pytest.approx(np.mean(LOSSES[loss](errors)), rel=1e-5)  # this loss
    capsys.readouterr()
    assert evaluate.main([str(run_dir / "checkpoints" / "last.pt")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["epoch"] == 5 and result["num_samples"] == len(prices)
    assert result["loss"] == pytest.approx(float(rows[-1]["val_loss"]), rel=1e-9)  # validation's numbers
    for key in ("mae", "rmse", "r2"):
        assert result[key] == pytest.approx(float(rows[-1][f"val_{key}"]), rel=1e-6), key
    other = "l1" if loss != "l1" else "mse"  # evaluate.py follows a trainer.loss override
    assert evaluate.main([str(run_dir / "checkpoints" / "last.pt"), f"trainer.loss={other}"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == pytest.approx(np.mean(LOSSES[other](errors)), rel=1e-5)


def test_several_targets_each_in_its_own_units_and_their_mean(cli_overrides, data_root, tmp_path):
    metrics = sklearn_metrics()
    targets = ["price", "noise"]  # the sample's `noise` as a second target (it has no gaps)
    settings = {"data.label_column": targets, "trainer.epochs": 2}
    assert train.main(cli_overrides(run_name="two", **settings)) == 0
    run_dir = tmp_path / "runs" / "two"
    outputs = val_outputs(run_dir / "checkpoints" / "last.pt")
    assert outputs.shape == (30, 2)  # one output per target
    scores = {"val_mae": [], "val_rmse": [], "val_r2": []}
    for j, name in enumerate(targets):
        train_values, values = column(data_root / "train.csv", name), column(data_root / "val.csv", name)
        predicted = outputs[:, j] * train_values.std() + train_values.mean()
        scores["val_mae"].append(metrics.mean_absolute_error(values, predicted))
        scores["val_rmse"].append(math.sqrt(metrics.mean_squared_error(values, predicted)))
        scores["val_r2"].append(metrics.r2_score(values, predicted))
    last = read_metrics(run_dir)[-1]
    for key, per_target in scores.items():  # the mean over the targets, each in its own units
        assert float(last[key]) == pytest.approx(np.mean(per_target), rel=1e-5, abs=1e-6), key
    assert scores["val_rmse"][0] > 10 * scores["val_rmse"][1]  # prices and noise are on very different scales
