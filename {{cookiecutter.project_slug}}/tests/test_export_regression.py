"""Exported regression models predict in the targets' own units: predict.py with the .onnx and .pt2 files and
deploy/onnx_predict.py alone write the checkpoint's numbers, a `prediction` column for one target and one column
per target, by name, for several."""

import pandas
import pytest
import torch
from test_export import assert_same_predictions, model_and_val_batch, predictions, standalone_predictions

import export
import train

pytest.importorskip("onnxruntime", reason='needs onnxruntime: pip install -e ".[export]"')


@pytest.mark.parametrize("targets", [["price"], ["noise", "price"]])
def test_exported_models_predict_each_target_in_its_units(targets, cli_overrides, data_root, tmp_path):
    assert train.main(cli_overrides(run_name="run", **{"data.label_column": targets})) == 0
    run_dir = tmp_path / "runs" / "run"
    model, data_info, inputs = model_and_val_batch(run_dir)
    assert [target["name"] for target in data_info["targets"]] == targets
    with torch.no_grad():
        standardised = model(inputs).double().numpy()
    # By hand: the model's outputs x the std + the mean (population std) of train.csv's target columns.
    table = pandas.read_csv(data_root / "train.csv")[targets]
    by_hand = standardised * table.std(ddof=0).to_numpy() + table.mean().to_numpy()
    columns = ["prediction"] if len(targets) == 1 else targets
    val_csv = [str(data_root / "val.csv")]

    expected = predictions(run_dir / "checkpoints" / "last.pt", val_csv, tmp_path / "checkpoint.csv")
    assert len(expected) == len(by_hand) == len(pandas.read_csv(data_root / "val.csv"))
    for row, values in zip(expected.values(), by_hand, strict=True):
        assert list(row) == ["input", *data_info["id_columns"], *columns]
        assert [float(row[column]) for column in columns] == pytest.approx(values.tolist(), rel=1e-5, abs=1e-5)
    for fmt, suffix in (("onnx", ".onnx"), ("exported", ".pt2")):
        assert export.main([str(run_dir), "--format", fmt]) == 0
        exported = predictions(run_dir / "export" / f"last{suffix}", val_csv, tmp_path / f"{fmt}.csv")
        assert_same_predictions(exported, expected)
    assert_same_predictions(standalone_predictions(run_dir / "export" / "last.onnx", val_csv, tmp_path / "d"), expected)
