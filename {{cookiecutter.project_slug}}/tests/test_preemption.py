"""Stopping on request (SIGTERM, SIGUSR1, Ctrl-C), mid-epoch checkpoints, and resuming mid-epoch exactly."""

import csv
import os
import signal
import subprocess
import sys

import pytest
import torch
from conftest import PROJECT_DIR
from test_train import AUGMENT, RECIPE, settings_that_exist

import train
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.preemption import EXIT_RESUMABLE, StopRequest


def assert_same(a, b, where="") -> None:
    """Nested dicts/lists of tensors and numbers, equal bit for bit."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}/{i}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def assert_same_run(run_dir, reference) -> None:
    """The final weights (and their average), optimizer state and metrics.csv (bar the times) of two runs."""
    final, expected = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (run_dir, reference))
    assert "progress" not in final  # the run finished its last epoch
    for entry in ("model", "model_ema", "optimizer", "scheduler", "epoch", "step"):
        assert_same(final.get(entry), expected.get(entry), entry)
    rows = [csv.DictReader((d / "metrics.csv").open(newline="")) for d in (run_dir, reference)]
    for row, other in zip(*rows, strict=True):
        row.pop("time_s"), other.pop("time_s")
        assert row == other


def signal_after(model, forwards: int, signum: int):
    """Send this process `signum` in the training forward pass number `forwards` + 1 (no RNG draws, no state)."""
    done = 0

    def hook(module, args):
        nonlocal done
        if module.training:
            if done == forwards:
                os.kill(os.getpid(), signum)
            done += 1

    model.register_forward_pre_hook(hook)
    return model


def steps_per_epoch(make_config, settings) -> int:
    return len(build_dataloaders(make_config(**settings))[0])


CASES = {  # each case crosses what it can: the lazy loader in the main process or in workers, the preloaded one
    "workers-0-accumulate-2": {"trainer.accumulate_steps": 2},
    "workers-2-recipe": {**RECIPE, "data.num_workers": 2},
    "preload-recipe-accumulate-2": {**RECIPE, "data.preload": "cpu", "trainer.accumulate_steps": 2},
}


@pytest.mark.parametrize("case", list(CASES))
def test_sigterm_mid_epoch_stops_with_a_checkpoint_and_resumes_exactly(
    tmp_path, cli_overrides, make_config, monkeypatch, case
):
    settings = {"trainer.epochs": 2, "model.dropout": 0.5, "data.batch_size": 4}  # 6 batches an epoch
    settings |= settings_that_exist({**AUGMENT, **CASES[case]})
    assert train.main(cli_overrides(run_name="straight", **settings)) == 0
    batches = steps_per_epoch(make_config, settings)
    assert batches >= 4
    real_build_model = train.build_model
    with monkeypatch.context() as patch:  # SIGTERM in epoch 2, during its third batch
        patch.setattr(train, "build_model", lambda *a: signal_after(real_build_model(*a), batches + 2, signal.SIGTERM))
        assert train.main(cli_overrides(run_name="stopped", **settings)) == EXIT_RESUMABLE
    run_dir = tmp_path / "runs" / "stopped"
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    accumulate = settings.get("trainer.accumulate_steps", 1)
    # The step of batch 3 finishes first; with accumulation, the group it belongs to.
    assert state["epoch"] == 1 and state["progress"]["batches"] == -(-3 // accumulate) * accumulate
    log = (run_dir / "train.log").read_text()
    assert "SIGTERM received" in log and f"Continue with: python train.py --resume {run_dir}" in log
    assert train.main(["--resume", str(run_dir)]) == 0
    assert_same_run(run_dir, tmp_path / "runs" / "straight")


KILL = """\
import os, signal, sys
sys.path.insert(0, {project!r})
import train
real_build_model = train.build_model
def build_model(*args):
    model, done = real_build_model(*args), [0]
    def hook(module, inputs):
        if module.training:
            if done[0] == {forwards}:
                os.kill(os.getpid(), signal.SIGKILL)  # no handler, no cleanup: as the OOM killer or a lost node
            done[0] += 1
    model.register_forward_pre_hook(hook)
    return model
train.build_model = build_model
if __name__ == "__main__":
    sys.exit(train.main(sys.argv[1:]))
"""


def test_kill_9_mid_epoch_resumes_from_the_last_step_checkpoint_exactly(tmp_path, cli_overrides, make_config):
    settings = {"trainer.epochs": 2, "model.dropout": 0.5, "data.batch_size": 4, "trainer.checkpoint_every_steps": 2}
    settings |= settings_that_exist({**AUGMENT, "trainer.ema_decay": 0.9})
    assert train.main(cli_overrides(run_name="straight", **settings)) == 0
    batches = steps_per_epoch(make_config, settings)
    script = tmp_path / "kill.py"
    script.write_text(KILL.format(project=str(PROJECT_DIR), forwards=batches + 3))  # in epoch 2's 4th batch
    proc = subprocess.run(
        [sys.executable, str(script), *cli_overrides(run_name="killed", **settings)],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run_dir = tmp_path / "runs" / "killed"
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and state["progress"]["batches"] == 2  # every 2 steps: the one after batch 2
    assert train.main(["--resume", str(run_dir)]) == 0
    assert_same_run(run_dir, tmp_path / "runs" / "straight")


def test_a_second_ctrl_c_stops_at_once_and_the_handlers_come_back():
    before = signal.getsignal(signal.SIGINT)
    with StopRequest() as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.signal_name == "SIGINT"  # the first: a request
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGUSR1)
        assert stop.signal_name == "SIGUSR1"
    assert signal.getsignal(signal.SIGINT) is before


def test_checkpoints_fall_due_by_steps_and_by_minutes(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("time.monotonic", lambda: clock[0])
    by_steps, by_minutes = StopRequest(every_steps=3), StopRequest(every_minutes=0.5)
    assert [by_steps.due(step) for step in range(1, 7)] == [False, False, True, False, False, True]
    assert not by_minutes.due(1)
    clock[0] += 31
    assert by_minutes.due(2)
    by_minutes.saved()
    assert not by_minutes.due(3) and not StopRequest().due(3)  # both 0: never
