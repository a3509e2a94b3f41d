"""Exported multi-label models: the companion file carries the labels and the thresholds, and predict.py with the
.onnx and .pt2 files and deploy/onnx_predict.py alone predict the labels the checkpoint predicts."""

import json

import pytest
import torch
from test_export import assert_same_predictions, model_and_val_batch, predictions, standalone_predictions

import export
import train
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint

pytest.importorskip("onnxruntime", reason='needs onnxruntime: pip install -e ".[export]"')


def test_exported_models_predict_the_checkpoints_labels(cli_overrides, data_root, tmp_path):
    assert train.main(cli_overrides(run_name="run", **{"trainer.epochs": 2})) == 0
    run_dir = tmp_path / "runs" / "run"
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    labels = state["data_info"]["labels"]
    # Thresholds of its own, far from 0.5 and different per label: a script that ignored them would differ.
    thresholds = [0.05, 0.9, 0.3, 0.6, 0.45][: len(labels)]
    state["data_info"]["thresholds"] = thresholds
    torch.save(state, run_dir / "checkpoints" / "last.pt")
    model, data_info, inputs = model_and_val_batch(run_dir)
    val_csv = [str(data_root / "val.csv")]
    expected = predictions(run_dir / "checkpoints" / "last.pt", val_csv, tmp_path / "checkpoint.csv")
    said = [row["prediction"] for row in expected.values()]
    with torch.no_grad():
        at_half = [";".join(n for n, s in zip(labels, row, strict=True) if s >= 0.5) for row in model(inputs).sigmoid()]
    assert said != at_half  # the thresholds matter here
    for fmt, suffix in (("onnx", ".onnx"), ("exported", ".pt2")):
        assert export.main([str(run_dir), "--format", fmt]) == 0
        sidecar = json.loads((run_dir / "export" / f"last{suffix}.json").read_text(encoding="utf-8"))
        assert sidecar["labels"] == labels and sidecar["thresholds"] == thresholds
        assert sidecar["data_info"]["thresholds"] == thresholds and sidecar["parity"]["outside_tolerance"] == 0
        exported = predictions(run_dir / "export" / f"last{suffix}", val_csv, tmp_path / f"{fmt}.csv")
        assert_same_predictions(exported, expected)
    standalone = standalone_predictions(run_dir / "export" / "last.onnx", val_csv, tmp_path / "d")
    assert_same_predictions(standalone, expected)
    assert [row["prediction"] for row in standalone.values()] == said
