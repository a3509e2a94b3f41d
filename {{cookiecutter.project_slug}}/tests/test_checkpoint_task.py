"""A checkpoint says which task its model was trained for; evaluate.py, predict.py, export.py and --resume refuse
one of another task by name, and model.weights may still start from its weights."""

import pytest
import torch

import evaluate
import export
import predict
import train
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint, read_weights_file, save_checkpoint
from {{ cookiecutter.package_name }}.errors import run_main
from {{ cookiecutter.package_name }}.task import TASK

OTHER = "another-task"  # whatever the checkpoint's task, if it is not this project's


def test_every_checkpoint_names_its_task(tmp_path):
    save_checkpoint({"model": {"w": torch.ones(2)}}, tmp_path / "x.pt")
    assert torch.load(tmp_path / "x.pt", weights_only=True)["task"] == TASK
    assert load_checkpoint(tmp_path / "x.pt")["task"] == TASK
    torch.save({"model": {"w": torch.ones(2)}}, tmp_path / "older.pt")  # written before checkpoints named it
    assert "task" not in load_checkpoint(tmp_path / "older.pt")


@pytest.fixture
def foreign(tmp_path):
    """<run>/checkpoints/last.pt of another task's model."""
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    torch.save({"model": {"w": torch.ones(2)}, "task": OTHER, "data_info": {}, "config": {}}, path)
    return path


@pytest.mark.parametrize(
    "main, args",
    [
        (evaluate.main, []),
        (predict.main, ["input.csv"]),
        (export.main, []),
        (train.main, ["--resume"]),
    ],
    ids=["evaluate", "predict", "export", "resume"],
)
def test_scripts_refuse_a_checkpoint_of_another_task_by_name(foreign, main, args, capsys):
    argv = [*args, str(foreign)] if args == ["--resume"] else [str(foreign), *args]
    assert run_main(main, argv) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"{foreign} is a checkpoint of a {OTHER} model" in line and f"are {TASK} models" in line, line


def test_model_weights_may_start_from_another_tasks_checkpoint(foreign):
    weights, names = read_weights_file(foreign)
    assert list(weights) == ["w"] and names == []
