"""Training with classes: metrics.csv's columns, label smoothing and class weights through training, validation and
evaluate.py, and the weighted validation loss against scikit-learn."""

import json
import math

import pytest
import torch
import torch.nn as nn
from test_train import read_metrics

import evaluate
from {{ cookiecutter.package_name }} import engine
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.report import evaluate_split
from {{ cookiecutter.package_name }}.task import EPOCH_FIELDS, MONITORS, class_weights


def test_metrics_columns_and_which_way_each_monitor_is_better():
    assert EPOCH_FIELDS == ["train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1"]
    assert MONITORS == {"val_acc": "max", "val_loss": "min", "val_macro_f1": "max"}


def test_cli_train_then_evaluate(tmp_path, cli_overrides, run_script, capsys):
    # With label smoothing, class weights and a warmup epoch: they reach training, validation and evaluate.py.
    recipe = {"trainer.label_smoothing": 0.2, "trainer.class_weights": "balanced", "optim.warmup_epochs": 1}
    proc = run_script("train.py", *cli_overrides(run_name="smoke", **{"trainer.epochs": 2, **recipe}))
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "runs" / "smoke"
    for name in ("config.yaml", "train.log", "metrics.csv", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run_dir / name).is_file(), name
    rows = read_metrics(run_dir)
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert all(math.isfinite(float(row["train_loss"])) and math.isfinite(float(row["val_loss"])) for row in rows)
    assert all(0.0 <= float(row[key]) <= 1.0 for row in rows for key in ("train_acc", "val_acc", "val_macro_f1"))
    assert "epoch 2/2" in (run_dir / "train.log").read_text()
    saved = load_config(run_dir / "config.yaml")  # the resolved config loads back as a config file
    assert saved.run_name == "smoke" and saved.trainer.epochs == 2
    assert not list(run_dir.rglob(".*tmp*"))  # no temp files left

    capsys.readouterr()
    assert evaluate.main([str(run_dir / "checkpoints" / "last.pt")]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()  # stdout: one JSON object, nothing else
    result = json.loads(line)
    # The same criterion and evaluate() as training's validation: exactly the last row's numbers.
    assert result["epoch"] == 2 and result["num_samples"] > 0
    assert result["loss"] == float(rows[-1]["val_loss"])
    assert result["accuracy"] == float(rows[-1]["val_acc"])
    # Smoothing was in effect: plain cross-entropy gives another loss. The warmup epoch ran at half the lr.
    assert evaluate.main([str(run_dir), "trainer.label_smoothing=0"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] != result["loss"]
    assert [float(row["lr"]) for row in rows] == pytest.approx([saved.optim.lr / 2, saved.optim.lr])


def test_balanced_class_weights_make_every_class_weigh_the_same(make_config, caplog):
    cfg = make_config(**{"trainer.class_weights": "balanced"})
    train_loader, _, info = build_dataloaders(cfg)
    labels = torch.cat([targets for _, targets in train_loader])
    assert info["class_counts"] == torch.bincount(labels, minlength=info["num_classes"]).tolist()  # train's only
    with caplog.at_level("INFO"):
        weights = class_weights(cfg, {"class_counts": [10, 30, 60]})
    assert weights.tolist() == pytest.approx([100 / 30, 100 / 90, 100 / 180])  # n / (classes x count)
    assert (weights * torch.tensor([10, 30, 60])).tolist() == pytest.approx([100 / 3] * 3)  # each class's total
    assert "class weights from the train counts [10, 30, 60]: [3.3333, 1.1111, 0.5556]" in caplog.text
    assert class_weights(make_config(), {"class_counts": [1, 2]}) is None  # none: the default


def test_weighted_val_loss_is_one_number_at_every_batch_size_and_matches_evaluate_and_sklearn(make_config):
    log_loss = pytest.importorskip("sklearn.metrics", reason='needs scikit-learn: pip install -e ".[dev]"').log_loss

    cfg = make_config()
    _, val_loader, info = build_dataloaders(cfg)
    weight = torch.arange(1.0, len(info["classes"]) + 1) ** 1.5  # a weighted mean divides by the summed weights
    criterion = nn.CrossEntropyLoss(weight=weight)
    model = build_model(cfg, info).eval()
    losses = []
    for batch_size in (7, 64):  # batches of 7 and a shorter last one, or all in one
        sized = make_config(**{"data.batch_size": batch_size})
        loader = build_dataloaders(sized)[1]
        losses.append(engine.evaluate(model, criterion, loader, torch.device("cpu"), sized)["loss"])
        report = evaluate_split(model, criterion, loader.dataset, info, sized, torch.device("cpu"), None)
        assert report["loss"] == pytest.approx(losses[-1], rel=1e-9)  # evaluate.py's number
    with torch.no_grad():
        pairs = [(model(inputs), targets) for inputs, targets in val_loader]
    probs, targets = torch.cat([p for p, _ in pairs]).double().softmax(1), torch.cat([t for _, t in pairs])
    expected = log_loss(targets, probs, sample_weight=weight[targets].numpy(), labels=range(len(weight)))
    assert losses == pytest.approx([expected, expected], rel=1e-5)
