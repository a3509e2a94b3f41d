"""Regression reports: MAE, RMSE and R2 in the targets' units against scikit-learn, validation's running sums,
the files written, and evaluate.py against the run's metrics.csv."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

import evaluate
from {{ cookiecutter.package_name }} import engine
from {{ cookiecutter.package_name }}.data import build_datasets
from {{ cookiecutter.package_name }}.task import RunningSums, build_report, epoch_row, summary, write_report

NEEDS_SKLEARN = 'needs scikit-learn: pip install -e ".[dev]"'  # the independent reference
PRICE = {"name": "price", "mean": 250.0, "std": 40.0}
RENT = {"name": "rent", "mean": -3.7, "std": 0.3}  # another scale and sign: a slip between targets shows
FILES = ["predicted_vs_actual.png", "predictions.csv", "report.json", "residuals.csv"]


def info_of(*targets: dict) -> dict:
    return {"targets": list(targets), "num_outputs": len(targets)}


def outputs_of(output: torch.Tensor, target: torch.Tensor, index=None) -> dict:
    n = len(target)
    index = torch.arange(n) if index is None else index
    return {"index": index, "target": target, "output": output, "loss_sum": 0.75 * n, "weight_sum": n}


def in_units(values: torch.Tensor, targets: list[dict]) -> np.ndarray:
    """Standardised values back in units, by hand with numpy."""
    mean, std = (np.array([t[key] for t in targets]) for key in ("mean", "std"))
    return values.double().numpy() * std + mean


def random_outputs(count: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(predictions, targets), standardised; the predictions miss by a different amount for each target."""
    generator = torch.Generator().manual_seed(seed)
    target = torch.randn(count, width, generator=generator)
    noise = torch.randn(count, width, generator=generator) * torch.tensor([0.3, 0.9][:width])
    return target + noise + 0.2, target


def read_rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("targets", [[PRICE], [PRICE, RENT]], ids=["one", "two"])
def test_every_number_equals_scikit_learn_in_units(targets):
    metrics = pytest.importorskip("sklearn.metrics", reason=NEEDS_SKLEARN)
    output, target = random_outputs(150, len(targets), seed=len(targets))
    report = build_report(outputs_of(output, target), info_of(*targets))
    y_pred, y_true = in_units(output, targets), in_units(target, targets)
    mae = metrics.mean_absolute_error(y_true, y_pred, multioutput="raw_values")
    rmse = np.sqrt(metrics.mean_squared_error(y_true, y_pred, multioutput="raw_values"))
    r2 = metrics.r2_score(y_true, y_pred, multioutput="raw_values")
    assert report["num_samples"] == 150 and report["loss"] == pytest.approx(0.75)
    assert report["mae"] == pytest.approx(mae.mean(), rel=1e-9)  # the mean over the targets
    assert report["rmse"] == pytest.approx(rmse.mean(), rel=1e-9)
    assert report["r2"] == pytest.approx(r2.mean(), rel=1e-9)
    if len(targets) == 1:
        assert "per_target" not in report
    else:
        assert list(report["per_target"]) == ["price", "rent"]
        for j, name in enumerate(report["per_target"]):
            expected = {"mae": mae[j], "rmse": rmse[j], "r2": r2[j]}
            assert report["per_target"][name] == pytest.approx(expected, rel=1e-9), name
    json.dumps(report, allow_nan=False)  # plain types only


def test_r2_is_null_for_a_target_that_does_not_vary():
    metrics = pytest.importorskip("sklearn.metrics", reason=NEEDS_SKLEARN)
    output, target = random_outputs(38, 2, seed=3)
    # rent is -3.61 in every row: R2 divides by its variance, 0. Summed in floats, 38 rows of it leave a
    # variance of 1e-31 in units and 1e-17 in the running sums: rounding, not a spread to divide by.
    target[:, 1] = 0.3
    report = build_report(outputs_of(output, target), info_of(PRICE, RENT))
    price_r2 = metrics.r2_score(in_units(target, [PRICE, RENT])[:, 0], in_units(output, [PRICE, RENT])[:, 0])
    assert report["per_target"]["price"]["r2"] == pytest.approx(price_r2, rel=1e-9)
    assert report["per_target"]["rent"]["r2"] is None and report["r2"] is None
    assert report["per_target"]["rent"]["mae"] > 0  # the other numbers stay defined
    assert '"r2": null' in json.dumps(report, allow_nan=False) and "R2 undefined" in summary(report)
    sums = RunningSums.for_validation(torch.device("cpu"), info_of(PRICE, RENT))
    for chunk in range(0, 38, 7):  # validation's sums: undefined too, not a huge negative number
        sums.add(torch.tensor(0.5), output[chunk : chunk + 7], target[chunk : chunk + 7])
    price, rent = sums.result("val")["per_target"]["r2"].tolist()
    assert price == pytest.approx(price_r2, rel=1e-9) and np.isnan(rent)


@pytest.mark.parametrize("targets", [[PRICE], [PRICE, RENT]], ids=["one", "two"])
def test_validation_sums_equal_the_report_on_the_same_predictions(targets, make_config):
    generator = torch.Generator().manual_seed(5)
    inputs = torch.randn(23, 4, generator=generator)  # 23 in batches of 5: a short last batch
    labels = inputs[:, : len(targets)] * 0.8 + 0.1 * torch.randn(23, len(targets), generator=generator)
    model, criterion = torch.nn.Linear(4, len(targets)), torch.nn.MSELoss()
    loader = DataLoader(TensorDataset(inputs, labels), batch_size=5)
    data_info = info_of(*targets)
    val = engine.evaluate(model, criterion, loader, torch.device("cpu"), make_config(), data_info)
    with torch.no_grad():
        output = model(inputs)
    n = labels.numel()  # predict_split sums the loss over every target of every sample (mean_divisor)
    sums = {"loss_sum": criterion(output, labels).item() * n, "weight_sum": n}
    report = build_report({**outputs_of(output, labels), **sums}, data_info)
    for key in ("loss", "mae", "rmse", "r2"):
        assert val[key] == pytest.approx(report[key], rel=1e-6), key
    assert val["num_samples"] == report["num_samples"] == 23
    # Training's sums are standardised; epoch_row puts its RMSE in units with the train std.
    train = RunningSums(torch.device("cpu"))
    for batch_inputs, batch_labels in loader:
        batch_output = model(batch_inputs).detach()
        train.add(criterion(batch_output, batch_labels), batch_output, batch_labels)
    row = epoch_row(train.result("train"), val, data_info)
    assert row["train_rmse"] == pytest.approx(report["rmse"], rel=1e-6)
    assert row["train_loss"] == pytest.approx(report["loss"], rel=1e-6)
    assert (row["val_mae"], row["val_rmse"], row["val_r2"]) == pytest.approx((val["mae"], val["rmse"], val["r2"]))


def test_report_files_in_units_with_the_largest_miss_first(data_root, make_config, tmp_path):
    _, val_set, data_info = build_datasets(make_config())
    index = torch.randperm(len(val_set), generator=torch.Generator().manual_seed(0))  # not in file order
    output, _ = random_outputs(len(val_set), 1, seed=1)
    outputs = outputs_of(output, val_set.labels[index], index)
    report = build_report(outputs, data_info)
    write_report(report, outputs, val_set, data_info, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == FILES
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8")) == report
    records = read_rows(data_root / "val.csv")
    rows = read_rows(tmp_path / "predictions.csv")
    assert list(rows[0]) == ["index", "source", "id", "target", "prediction", "residual"]
    assert [int(row["index"]) for row in rows] == index.tolist()  # every sample, in the outputs' order
    predicted = in_units(output, data_info["targets"])[:, 0]
    for row, i, prediction in zip(rows, index.tolist(), predicted, strict=True):
        assert row["source"] == f"val.csv:{i + 2}" and row["id"] == records[i]["id"]
        assert float(row["target"]) == pytest.approx(float(records[i]["price"]), rel=1e-5)  # the CSV's price
        assert float(row["prediction"]) == pytest.approx(prediction, rel=1e-5)
        assert float(row["residual"]) == pytest.approx(prediction - float(records[i]["price"]), abs=1e-3)
    residuals = read_rows(tmp_path / "residuals.csv")
    assert sorted(residuals, key=lambda row: row["index"]) == sorted(rows, key=lambda row: row["index"])
    misses = [abs(float(row["residual"])) for row in residuals]
    assert misses == sorted(misses, reverse=True) and misses[0] > misses[-1]
    with Image.open(tmp_path / "predicted_vs_actual.png") as image:
        image.verify()
        assert image.format == "PNG"


def test_report_files_with_two_targets(tmp_path):
    output, target = random_outputs(12, 2, seed=4)
    data_info = info_of(PRICE, RENT)
    outputs = outputs_of(output, target)
    dataset = TensorDataset(target)  # a dataset of your own (docs/GUIDE.md's): no `source`, no id columns
    write_report(build_report(outputs, data_info), outputs, dataset, data_info, tmp_path)
    rows = read_rows(tmp_path / "predictions.csv")
    columns = [f"{name}_{what}" for name in ("price", "rent") for what in ("target", "prediction", "residual")]
    assert list(rows[0]) == ["index", "source", *columns]
    assert [row["source"] for row in rows] == [str(i) for i in range(12)]  # named by its index
    got = np.array([[float(row[c]) for c in columns] for row in rows]).reshape(12, 2, 3)
    truth, predicted = in_units(target, [PRICE, RENT]), in_units(output, [PRICE, RENT])
    assert got[:, :, 0] == pytest.approx(truth, rel=1e-5) and got[:, :, 1] == pytest.approx(predicted, rel=1e-5)
    # residuals.csv: the largest miss first, measured in each target's std (rent's 0.3 is not price's 40)
    scaled = np.abs((predicted - truth) / [PRICE["std"], RENT["std"]]).max(1)
    order = [int(row["index"]) for row in read_rows(tmp_path / "residuals.csv")]
    assert order == np.argsort(-scaled, kind="stable").tolist()
    assert order != np.argsort(-np.abs(predicted - truth).max(1), kind="stable").tolist()  # not in raw units


def test_evaluate_prints_the_numbers_of_the_runs_last_validation(trained_run, tmp_path, capsys):
    run = shutil.copytree(trained_run, tmp_path / "run")  # evaluate.py writes eval/val/: the shared run stays
    last = read_rows(run / "metrics.csv")[-1]
    capsys.readouterr()
    assert evaluate.main([str(run / "checkpoints" / "last.pt")]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["split"] == "val" and result["epoch"] == int(last["epoch"]) == 2
    for key in ("loss", "mae", "rmse", "r2"):
        assert result[key] == pytest.approx(float(last[f"val_{key}"]), rel=1e-6), key
    assert "MAE" in err and "RMSE" in err  # the readable table on stderr
    assert sorted(p.name for p in (run / "eval" / "val").iterdir()) == FILES
