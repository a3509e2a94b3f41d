"""predict.py for labels: `prediction` holds the labels whose score reaches the checkpoint's threshold (joined by
data.label_separator, empty for none), then each label's score; the end-of-training report's rows agree."""

import csv

import numpy as np
import pytest
import torch
from conftest import checkpoint_model

import predict
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint


def read_csv(path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        return reader.fieldnames, list(reader)


def scores_of(checkpoint_path) -> np.ndarray:
    """Each val row's label scores, the sigmoid of the model's outputs, through the training pipeline."""
    model, val_loader, _ = checkpoint_model(checkpoint_path)
    with torch.inference_mode():
        return torch.cat([model(inputs) for inputs, _ in val_loader]).double().sigmoid().numpy()


def said(scores: np.ndarray, labels: list[str], thresholds) -> list[str]:
    """The labels at or above their thresholds, by hand, joined as predict.py joins them."""
    return [";".join(name for name, s, t in zip(labels, row, thresholds, strict=True) if s >= t) for row in scores]


def test_predictions_follow_the_checkpoints_thresholds(trained_run, data_root, tmp_path):
    val_csv = data_root / "val.csv"
    output = tmp_path / "predictions.csv"
    assert predict.main([str(trained_run), str(val_csv), "--batch-size", "7", "--output", str(output)]) == 0
    header, rows = read_csv(output)
    info = load_checkpoint(trained_run / "checkpoints" / "best.pt")["data_info"]
    labels, thresholds = info["labels"], info["thresholds"]
    assert header == ["input", "id", "prediction", *(f"p_{name}" for name in labels)]
    assert [row["input"] for row in rows] == [f"{val_csv}:{line}" for line in range(2, len(rows) + 2)]
    expected = scores_of(trained_run / "checkpoints" / "best.pt")
    got = np.array([[float(row[f"p_{name}"]) for name in labels] for row in rows])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert [row["prediction"] for row in rows] == said(expected, labels, thresholds)
    # The report of best.pt at the end of training: the same labels for the same id.
    _, report = read_csv(trained_run / "eval" / "val" / "predictions.csv")
    by_id = {row["id"]: row["prediction"] for row in report}
    assert {row["id"]: row["prediction"] for row in rows} == by_id


@pytest.mark.parametrize("case", ["all", "none", "mixed"])
def test_other_thresholds_predict_other_labels(case, trained_run, data_root, tmp_path):
    state = load_checkpoint(trained_run / "checkpoints" / "best.pt")
    labels = state["data_info"]["labels"]
    thresholds = {"all": [0.0] * len(labels), "none": [1.01] * len(labels)}.get(case)
    scores = scores_of(trained_run / "checkpoints" / "best.pt")
    if thresholds is None:  # each label its own: the median score of the first, above every score for the rest
        thresholds = [float(np.median(scores[:, 0])), *[1.01] * (len(labels) - 1)]
    state["data_info"]["thresholds"] = thresholds
    path = tmp_path / "changed.pt"
    torch.save(state, path)
    output = tmp_path / "predictions.csv"
    assert predict.main([str(path), str(data_root / "val.csv"), "--output", str(output)]) == 0
    predicted = [row["prediction"] for row in read_csv(output)[1]]
    assert predicted == said(scores, labels, thresholds)
    if case == "all":
        assert set(predicted) == {";".join(labels)}
    elif case == "none":
        assert set(predicted) == {""}  # no label: an empty cell
    else:
        assert set(predicted) == {"", labels[0]} and predicted.count(labels[0]) >= len(predicted) / 2
