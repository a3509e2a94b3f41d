"""TensorBoard: the event files hold exactly metrics.csv's values; a missing package only costs a warning.

Needs the `tensorboard` extra (pip install -e ".[dev,tensorboard]") to read the event files back.
"""

import csv
import logging
import sys

import pytest
import torch

import train
from {{ cookiecutter.package_name }}.task import EPOCH_FIELDS
from {{ cookiecutter.package_name }}.tensorboard import TAGS, TensorBoardLogger

NEEDS = 'needs tensorboard: pip install -e "."'  # a dependency of this project
# Each metrics.csv column's tag, written out here (not taken from TAGS): a tag pointing at another column must fail.
EXPECTED_TAGS = {"loss/train": "train_loss", "acc/train": "train_acc", "loss/val": "val_loss"}  # classification
EXPECTED_TAGS |= {"acc/val": "val_acc", "macro_f1/val": "val_macro_f1"}  # classification
EXPECTED_TAGS = {"loss/train": "train_loss", "rmse/train": "train_rmse", "loss/val": "val_loss"}  # regression
EXPECTED_TAGS |= {"mae/val": "val_mae", "rmse/val": "val_rmse", "r2/val": "val_r2"}  # regression
EXPECTED_TAGS = {"loss/train": "train_loss", "map/train": "train_map", "loss/val": "val_loss"}  # multilabel
EXPECTED_TAGS |= {"map/val": "val_map", "micro_f1/val": "val_micro_f1", "macro_f1/val": "val_macro_f1"}  # multilabel


def read_metrics(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def read_events(log_dir):
    tensorboard = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator", reason=NEEDS)
    events = tensorboard.EventAccumulator(str(log_dir))
    events.Reload()
    return events


def test_scalars_equal_metrics_csv_and_the_graph_is_there(tmp_path, cli_overrides):
    assert train.main(cli_overrides(run_name="tb", **{"trainer.epochs": 2})) == 0
    run_dir = tmp_path / "runs" / "tb"
    events = read_events(run_dir / "tensorboard")
    rows = read_metrics(run_dir)
    assert set(TAGS.values()) == set(rows[0]) - {"epoch", "time_s"}  # every metric of metrics.csv is charted
    for tag, column in TAGS.items():
        logged = [(event.step, event.value) for event in events.Scalars(tag)]
        expected = [(int(row["epoch"]), float(row[column])) for row in rows]
        assert [step for step, _ in logged] == [step for step, _ in expected], tag
        for (_, value), (_, want) in zip(logged, expected, strict=True):
            assert value == pytest.approx(want, rel=1e-6, abs=1e-7), tag  # stored as float32
    speeds = [event.value for event in events.Scalars("speed/train_samples_per_s")]
    assert len(speeds) == 2 and all(speed > 0 for speed in speeds)
    assert events.Graph() is not None  # the model traced


def test_missing_tensorboard_is_one_warning_and_training_goes_on(tmp_path, cli_overrides, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if the package were not installed
    assert train.main(cli_overrides(run_name="no_tb", **{"trainer.epochs": 2})) == 0
    run_dir = tmp_path / "runs" / "no_tb"
    warnings = [line for line in (run_dir / "train.log").read_text().splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "pip install tensorboard" in warnings[0]
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert not (run_dir / "tensorboard").exists()


class Untraceable(torch.nn.Module):
    """A model torch.jit.trace refuses: its output is not a tensor."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 3)

    def forward(self, x):
        return {"logits": self.linear(x)}


def test_a_model_that_does_not_trace_costs_the_graph_only(tmp_path, caplog):
    loader = [(torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64))]
    with caplog.at_level(logging.INFO):
        logger = TensorBoardLogger(tmp_path, Untraceable(), loader)
    assert "graph skipped" in caplog.text
    row = {"epoch": 1, **{name: 0.25 * (i + 1) for i, name in enumerate(EPOCH_FIELDS)}, "lr": 0.01}
    row["val_loss"] = 0.75
    logger(row, {"samples_per_s": 100.0})
    events = read_events(tmp_path)
    assert [(e.step, e.value) for e in events.Scalars("loss/val")] == [(1, 0.75)]
    assert [e.value for e in events.Scalars("speed/train_samples_per_s")] == [100.0]


def test_each_tag_holds_its_own_column(tmp_path):
    logger = TensorBoardLogger(tmp_path, Untraceable(), [(torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64))])
    row = {name: 0.25 * (i + 1) for i, name in enumerate(EPOCH_FIELDS)}  # a different value in each column
    logger({"epoch": 3, **row, "lr": 0.125}, {"samples_per_s": 64.0})
    events = read_events(tmp_path)
    assert sorted(EXPECTED_TAGS.values()) == sorted(EPOCH_FIELDS)
    expected = {tag: row[column] for tag, column in EXPECTED_TAGS.items()}
    expected |= {"lr": 0.125, "speed/train_samples_per_s": 64.0}
    assert sorted(events.Tags()["scalars"]) == sorted(expected)  # no other tag
    assert {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in expected} == {
        tag: [(3, value)] for tag, value in expected.items()
    }


def test_a_resumed_run_goes_on_logging_its_epochs(tmp_path, cli_overrides):
    assert train.main(cli_overrides(run_name="tb_resume", **{"trainer.epochs": 1})) == 0
    run_dir = tmp_path / "runs" / "tb_resume"
    assert train.main(["--resume", str(run_dir), "trainer.epochs=3"]) == 0
    events, rows = read_events(run_dir / "tensorboard"), read_metrics(run_dir)
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    logged = [(event.step, event.value) for event in events.Scalars("loss/val")]
    assert logged == [(int(row["epoch"]), pytest.approx(float(row["val_loss"]), rel=1e-6)) for row in rows]
