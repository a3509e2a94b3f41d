"""Training on labels: it learns the sample, val_map picks best.pt, every checkpoint carries the thresholds of its
own weights (also after --resume, also in the end-of-training report), and trainer.class_weights=balanced."""

import csv
import json

import numpy as np
import pytest
import torch
from conftest import checkpoint_model
from test_train import read_metrics

import evaluate
import train
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint
from {{ cookiecutter.package_name }}.data.sample import write_sample
from {{ cookiecutter.package_name }}.engine import evaluate as validate
from {{ cookiecutter.package_name }}.task import EPOCH_FIELDS, MONITORS, build_criterion


def validated(path) -> dict:
    """A checkpoint's weights validated again in this process: validation's numbers and thresholds."""
    model, val_loader, cfg = checkpoint_model(path)
    info = load_checkpoint(path)["data_info"]
    return validate(model, build_criterion(cfg, info), val_loader, torch.device("cpu"), cfg, info)


def tags_of(path, labels=None) -> tuple[list[str], np.ndarray]:
    """(the labels, sorted unless given, and 0/1 per row and label) of a CSV's `tags` column, read apart from the
    project."""
    with open(path, newline="", encoding="utf-8") as file:
        cells = [set(filter(None, row["tags"].split(";"))) for row in csv.DictReader(file)]
    labels = labels or sorted(set().union(*cells))
    return labels, np.array([[label in cell for label in labels] for cell in cells], dtype=np.float64)


def test_metrics_columns_and_which_way_each_monitor_is_better():
    assert EPOCH_FIELDS == ["train_loss", "train_map", "val_loss", "val_map", "val_micro_f1", "val_macro_f1"]
    assert MONITORS == {"val_map": "max", "val_micro_f1": "max", "val_macro_f1": "max", "val_loss": "min"}


def test_it_learns_the_sample_and_val_map_picks_best_pt(cli_overrides, tmp_path, capsys):
    root = write_sample(tmp_path / "sample", train_rows=400, val_rows=150)
    settings = {"data.root": root, "trainer.epochs": 6, "optim.lr": 0.01, "model.hidden_sizes": [32, 32]}
    assert train.main(cli_overrides(run_name="learn", **settings)) == 0
    run_dir = tmp_path / "runs" / "learn"
    rows = read_metrics(run_dir)
    scores = [float(row["val_map"]) for row in rows]
    assert scores[-1] > 0.8 and scores[-1] > scores[0] + 0.1  # it learned the tags
    best = scores.index(max(scores)) + 1
    state = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert state["epoch"] == best  # trainer.monitor: val_map, higher is better
    report = json.loads((run_dir / "eval" / "val" / "report.json").read_text(encoding="utf-8"))
    assert report["thresholds"] == state["data_info"]["thresholds"]
    capsys.readouterr()
    assert evaluate.main([str(run_dir / "checkpoints" / "best.pt")]) == 0
    result = json.loads(capsys.readouterr().out)
    # At best.pt's own thresholds, from every score: the F1s its validation counted in the bins.
    for key in ("micro_f1", "macro_f1"):
        assert result[key] == pytest.approx(float(rows[best - 1][f"val_{key}"]), abs=1e-9), key
    assert result["map"] == pytest.approx(float(rows[best - 1]["val_map"]), abs=0.01)  # bins of 1/1000


def test_every_checkpoint_carries_its_own_epochs_thresholds(cli_overrides, tmp_path):
    # A large lr: val_map peaks early, so best.pt is not the last epoch.
    settings = {"trainer.epochs": 4, "trainer.keep_checkpoints": 4, "trainer.monitor": "val_map", "optim.lr": 0.3}
    assert train.main(cli_overrides(run_name="kept", **settings)) == 0
    folder = tmp_path / "runs" / "kept" / "checkpoints"
    seen = {}
    for path in sorted(folder.glob("*.pt")):
        state = load_checkpoint(path)
        assert validated(path)["thresholds"] == state["data_info"]["thresholds"], path.name
        seen[state["epoch"]] = state["data_info"]["thresholds"]
    assert len(seen) == 4 and len({tuple(t) for t in seen.values()}) > 1  # they change from epoch to epoch
    best = load_checkpoint(folder / "best.pt")
    assert best["epoch"] != 4  # the case that matters below: best.pt is not the last epoch
    report = json.loads((folder.parent / "eval" / "val" / "report.json").read_text(encoding="utf-8"))
    assert report["thresholds"] == best["data_info"]["thresholds"] != seen[4]  # the end of training: best.pt's


def test_resume_keeps_the_thresholds(cli_overrides, tmp_path):
    assert train.main(cli_overrides(run_name="straight", **{"trainer.epochs": 2})) == 0
    assert train.main(cli_overrides(run_name="resumed", **{"trainer.epochs": 1})) == 0
    resumed = tmp_path / "runs" / "resumed"
    assert train.main(["--resume", str(resumed), *cli_overrides(**{"trainer.epochs": 2})]) == 0
    for name in ("last.pt", "best.pt"):
        straight = load_checkpoint(tmp_path / "runs" / "straight" / "checkpoints" / name)
        again = load_checkpoint(resumed / "checkpoints" / name)
        assert again["epoch"] == straight["epoch"]
        assert again["data_info"]["thresholds"] == straight["data_info"]["thresholds"], name
    last = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert last["epoch"] == 2
    assert validated(resumed / "checkpoints" / "last.pt")["thresholds"] == last["data_info"]["thresholds"]


def test_balanced_class_weights_are_negatives_over_positives(cli_overrides, data_root, tmp_path):
    settings = {"trainer.class_weights": "balanced", "trainer.epochs": 1}
    assert train.main(cli_overrides(run_name="weighted", **settings)) == 0
    labels, y = tags_of(data_root / "train.csv")
    by_hand = (len(y) - y.sum(0)) / y.sum(0)  # per label: train negatives / positives
    run_dir = tmp_path / "runs" / "weighted"
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["data_info"]["labels"] == labels
    criterion = build_criterion(checkpoint_model(run_dir / "checkpoints" / "last.pt")[2], state["data_info"])
    assert criterion.pos_weight.double().numpy() == pytest.approx(by_hand, rel=1e-6)
    # Validation's loss, by hand: -(w y log s + (1 - y) log(1 - s)), averaged over every label of every sample.
    model, val_loader, _ = checkpoint_model(run_dir / "checkpoints" / "last.pt")
    with torch.inference_mode():
        logits = torch.cat([model(inputs) for inputs, _ in val_loader]).double().numpy()
    _, val_y = tags_of(data_root / "val.csv", labels)
    s = 1 / (1 + np.exp(-logits))
    loss = -(by_hand * val_y * np.log(s) + (1 - val_y) * np.log(1 - s)).mean()
    assert float(read_metrics(run_dir)[-1]["val_loss"]) == pytest.approx(loss, rel=1e-5)
