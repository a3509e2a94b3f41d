"""predict.py: the CSV contract, agreement with the training data pipeline, every input kind, refusals and errors.

What an input is depends on the data type: tests/test_data.py provides `val_inputs`,
`mixed_predict_inputs`, `bad_predict_inputs` and `cli_bad_predict_input` for this project's type.
"""

import csv
from pathlib import Path

import pytest
import torch
from test_data import bad_predict_inputs, cli_bad_predict_input, mixed_predict_inputs, val_inputs

import predict
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint, load_model_weights
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.engine import evaluate
from {{ cookiecutter.package_name }}.errors import ConfigError, DataError, run_main
from {{ cookiecutter.package_name }}.models import build_model


@pytest.fixture
def run_dir(trained_run) -> Path:
    return trained_run  # conftest.py: one tiny trained run per session


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
    state = load_checkpoint(run_dir / "checkpoints" / "best.pt")  # what predict.py takes for a run dir
    cfg = load_config(base=state["config"])
    _, val_loader, data_info = build_dataloaders(cfg, state["data_info"])
    model = build_model(cfg, data_info)
    load_model_weights(model, state)
    model.eval()
    with torch.inference_mode():
        logits, labels = zip(*((model(inputs), targets) for inputs, targets in val_loader), strict=True)
    accuracy = evaluate(model, torch.nn.CrossEntropyLoss(), val_loader, torch.device("cpu"), cfg)["accuracy"]
    return val_loader.dataset, torch.cat(logits).softmax(dim=1), torch.cat(labels), accuracy


def test_predictions_match_the_training_pipeline(run_dir, data_root, tmp_path, capsys):
    classes = [str(c) for c in load_checkpoint(run_dir)["data_info"]["classes"]]
    val_set, expected, labels, accuracy = through_the_pipeline(run_dir)
    inputs, names = val_inputs(data_root, val_set, tmp_path)
    output = tmp_path / "out" / "predictions.csv"
    capsys.readouterr()
    # Batches of 3, not the pipeline's 8, and an override mixed in with the inputs.
    args = [str(run_dir), *inputs, "trainer.device=cpu", "--batch-size", "3", "--output", str(output)]
    assert predict.main(args) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout stays free; the one-line summary goes to stderr
    assert f"Predicted {len(names)} inputs" in captured.err and f"wrote {output}" in captured.err
    assert f"with {run_dir / 'checkpoints' / 'best.pt'} (epoch" in captured.err  # a run dir: its best.pt

    rows = read_predictions(output, classes)
    assert len(rows) == len(val_set)
    by_name = {row["input"]: row for row in rows}
    assert sorted(by_name) == sorted(names)  # one row per input, named as expected
    got = torch.stack([probabilities_of(by_name[name], classes) for name in names])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)  # the same numbers as training's pipeline
    predicted = torch.tensor([classes.index(by_name[name]["prediction"]) for name in names])
    assert (predicted == labels).float().mean().item() == pytest.approx(accuracy, abs=1e-6)  # = evaluate.py's
    assert sorted(p.name for p in output.parent.iterdir()) == ["predictions.csv"]  # no temp file left


def test_every_input_kind_in_the_order_given(run_dir, data_root, tmp_path):
    """Each kind of input this data type takes, mixed in one call; the same sample gets the same numbers."""
    classes = load_checkpoint(run_dir)["data_info"]["classes"]
    _, names = val_inputs(data_root, through_the_pipeline(run_dir)[0], tmp_path)
    inputs, expected, same = mixed_predict_inputs(data_root, names, tmp_path)
    output = tmp_path / "predictions.csv"
    assert predict.main([str(run_dir), *inputs, "--output", str(output)]) == 0
    rows = read_predictions(output, classes)
    assert [row["input"] for row in rows] == expected
    by_name = {row["input"]: probabilities_of(row, classes) for row in rows}
    for name, original in same:
        torch.testing.assert_close(by_name[name], by_name[original], atol=1e-5, rtol=0)


def test_an_existing_output_is_refused_unless_overwrite(run_dir, data_root, tmp_path, monkeypatch):
    val_set = through_the_pipeline(run_dir)[0]
    inputs, names = val_inputs(data_root, val_set, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert predict.main([str(run_dir), *inputs]) == 0  # default: predictions.csv in the working directory
    output = tmp_path / "predictions.csv"
    with open(output, newline="", encoding="utf-8") as file:
        assert len(list(csv.DictReader(file))) == len(names)
    output.write_text("precious\n")
    with pytest.raises(ConfigError, match="already exists.*--overwrite"):
        predict.main([str(run_dir), *inputs])
    assert output.read_text() == "precious\n"
    assert predict.main([str(run_dir), *inputs, "--overwrite"]) == 0
    assert output.read_text().startswith("input,") and ",prediction,probability," in output.read_text()


def test_bad_inputs_are_clear_errors(run_dir, tmp_path):
    output = tmp_path / "out.csv"
    for inputs, message in bad_predict_inputs(tmp_path):
        with pytest.raises(DataError, match=message):
            predict.main([str(run_dir), *inputs, "--output", str(output)])
        assert not output.exists()


def test_cli_errors_exit_2_with_one_line(run_dir, tmp_path, monkeypatch, capsys):
    args, message = cli_bad_predict_input(tmp_path)
    monkeypatch.chdir(tmp_path)  # where predictions.csv would be written
    assert run_main(predict.main, [str(run_dir), *args]) == 2  # what `python predict.py` exits with
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith(message)
    assert not (tmp_path / "predictions.csv").exists()
