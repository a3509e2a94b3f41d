"""predict.py: the CSV contract, agreement with the evaluation report, every input kind, refusals and errors.

What an input is depends on the data type: tests/test_data.py provides `val_inputs`,
`mixed_predict_inputs`, `bad_predict_inputs` and `cli_bad_predict_input` for this project's type.
What the columns after the input's hold is the task's (task.py's prediction_table); the task's
predict test file checks their numbers.
"""

import csv
import math
from pathlib import Path

import pytest
from test_data import bad_predict_inputs, cli_bad_predict_input, mixed_predict_inputs, val_inputs

import predict
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.data import build_datasets
from {{ cookiecutter.package_name }}.errors import ConfigError, DataError, run_main


@pytest.fixture
def run_dir(trained_run) -> Path:
    return trained_run  # conftest.py: one tiny trained run per session


def read_predictions(path: Path, data_info: dict) -> tuple[list[str], list[dict]]:
    """(the task's columns, the rows) of a predictions CSV: `input`, the id columns (tables), then the task's."""
    ids = data_info.get("id_columns", [])
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames[: 1 + len(ids)] == ["input", *ids]
        columns = reader.fieldnames[1 + len(ids) :]
        assert columns[0] == "prediction"
        return columns, list(reader)


def same_cell(a: str, b: str) -> bool:
    """Equal as written, or as numbers up to float noise (other batches, other sums)."""
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-5, abs_tol=1e-5)
    except ValueError:
        return a == b


def val_set_of(run_dir: Path):
    """(val dataset, data_info) as the run's best.pt (what predict.py takes for a run dir) builds them."""
    state = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    return build_datasets(load_config(base=state["config"]), state["data_info"])[1], state["data_info"]


def read_report_rows(run_dir: Path) -> list[dict]:
    """eval/val/predictions.csv (training's report with best.pt), in val order."""
    with open(run_dir / "eval" / "val" / "predictions.csv", newline="", encoding="utf-8") as file:
        return sorted(csv.DictReader(file), key=lambda row: int(row["index"]))


def test_predictions_of_the_val_inputs_are_the_evaluation_reports(run_dir, data_root, tmp_path, capsys):
    val_set, data_info = val_set_of(run_dir)
    inputs, names = val_inputs(data_root, val_set, tmp_path)
    output = tmp_path / "out" / "predictions.csv"
    capsys.readouterr()
    # Batches of 3, not the pipeline's, and an override mixed in with the inputs.
    args = [str(run_dir), *inputs, "trainer.device=cpu", "--batch-size", "3", "--output", str(output)]
    assert predict.main(args) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout stays free; the one-line summary goes to stderr
    assert f"Predicted {len(names)} inputs" in captured.err and f"wrote {output}" in captured.err
    assert f"with {run_dir / 'checkpoints' / 'best.pt'} (epoch" in captured.err  # a run dir: its best.pt

    _, rows = read_predictions(output, data_info)
    assert len(rows) == len(val_set)
    by_name = {row["input"]: row for row in rows}
    assert sorted(by_name) == sorted(names)  # one row per input, named as expected
    report = read_report_rows(run_dir)
    assert len(report) == len(names)
    ids = data_info.get("id_columns", [])
    for i, (name, evaluated) in enumerate(zip(names, report, strict=True)):
        row = by_name[name]
        assert same_cell(row["prediction"], evaluated["prediction"]), (name, row, evaluated)
        expected_ids = val_set.ids(i) if ids else []  # carried from the input's row
        assert [row[column] for column in ids] == [evaluated[column] for column in ids] == list(expected_ids)
    assert sorted(p.name for p in output.parent.iterdir()) == ["predictions.csv"]  # no temp file left


def test_every_input_kind_in_the_order_given(run_dir, data_root, tmp_path):
    """Each kind of input this data type takes, mixed in one call; the same sample gets the same numbers."""
    val_set, data_info = val_set_of(run_dir)
    _, names = val_inputs(data_root, val_set, tmp_path)
    inputs, expected, same = mixed_predict_inputs(data_root, names, tmp_path)
    output = tmp_path / "predictions.csv"
    assert predict.main([str(run_dir), *inputs, "--output", str(output)]) == 0
    columns, rows = read_predictions(output, data_info)
    assert [row["input"] for row in rows] == expected
    by_name = {row["input"]: row for row in rows}
    for name, original in same:
        for column in columns:
            assert same_cell(by_name[name][column], by_name[original][column]), (name, original, column)


def test_an_existing_output_is_refused_unless_overwrite(run_dir, data_root, tmp_path, monkeypatch):
    inputs, names = val_inputs(data_root, val_set_of(run_dir)[0], tmp_path)
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
    assert output.read_text().startswith("input,") and ",prediction" in output.read_text().splitlines()[0]


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
