"""TensorBoard: the event files hold exactly metrics.csv's values; a missing package only costs a warning."""

import csv
import sys

import pytest

import train
from {{ cookiecutter.package_name }}.utils import tensorboard


def read_metrics(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_scalars_equal_metrics_csv_and_the_graph_is_there(tmp_path, cli_overrides):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert train.main(cli_overrides(run_name="tb", **{"trainer.epochs": 2})) == 0
    run_dir = tmp_path / "runs" / "tb"
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    rows = read_metrics(run_dir)
    for tag, column in tensorboard.TAGS.items():
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


def test_switched_off_in_the_config(tmp_path, cli_overrides):
    assert train.main(cli_overrides(run_name="off", **{"trainer.tensorboard": False})) == 0
    assert not (tmp_path / "runs" / "off" / "tensorboard").exists()
