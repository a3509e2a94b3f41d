"""predict.py with classes: the class, its probability and one p_<class> column per class, the numbers of the training
pipeline, and the accuracy evaluate() gives."""

import csv
from pathlib import Path

import pytest
import torch
from conftest import checkpoint_model
from test_data import val_inputs

import predict
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint
from {{ cookiecutter.package_name }}.engine import evaluate


def read_predictions(path: Path, classes: list[str]) -> list[dict]:
    """The rows of a predictions CSV, after checking what every row must satisfy."""
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        ids = reader.fieldnames[1 : -len(classes) - 2]  # columns that name the row, if the inputs have them
        assert reader.fieldnames == ["input", *ids, "prediction", "probability", *(f"p_{c}" for c in classes)]
        rows = list(reader)
    for row in rows:
        probabilities = [float(row[f"p_{c}"]) for c in classes]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
        assert row["prediction"] in classes
        best = max(range(len(classes)), key=probabilities.__getitem__)
        assert row["prediction"] == classes[best]  # the argmax
        assert float(row["probability"]) == probabilities[best]
    return rows


def probabilities_of(row: dict, classes: list[str]) -> torch.Tensor:
    return torch.tensor([float(row[f"p_{c}"]) for c in classes])


def through_the_pipeline(run_dir: Path):
    """(val dataset, softmax probabilities, labels, evaluate()'s accuracy) from the training data pipeline."""
    model, val_loader, cfg = checkpoint_model(run_dir / "checkpoints" / "best.pt")  # predict.py on a run dir
    with torch.inference_mode():
        logits, labels = zip(*((model(inputs), targets) for inputs, targets in val_loader), strict=True)
    accuracy = evaluate(model, torch.nn.CrossEntropyLoss(), val_loader, torch.device("cpu"), cfg)["accuracy"]
    return val_loader.dataset, torch.cat(logits).softmax(dim=1), torch.cat(labels), accuracy


def test_probabilities_match_the_training_pipeline(trained_run, data_root, tmp_path):
    classes = [str(c) for c in load_checkpoint(trained_run)["data_info"]["classes"]]
    val_set, expected, labels, accuracy = through_the_pipeline(trained_run)
    inputs, names = val_inputs(data_root, val_set, tmp_path)
    output = tmp_path / "predictions.csv"
    assert predict.main([str(trained_run), *inputs, "--batch-size", "3", "--output", str(output)]) == 0
    by_name = {row["input"]: row for row in read_predictions(output, classes)}
    assert sorted(by_name) == sorted(names)
    got = torch.stack([probabilities_of(by_name[name], classes) for name in names])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)  # the same numbers as training's pipeline
    predicted = torch.tensor([classes.index(by_name[name]["prediction"]) for name in names])
    assert (predicted == labels).float().mean().item() == pytest.approx(accuracy, abs=1e-6)  # = evaluate.py's
