"""Stopping on request (SIGTERM, SIGUSR1, Ctrl-C), mid-epoch checkpoints, resuming mid-epoch exactly, running out of
memory (test_resume.py: a full disk, a killed data-loading worker)."""

import csv
import os
import random
import re
import shlex
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
from {{ cookiecutter.package_name }}.preemption import EXIT_RESUMABLE, StopRequest, fault_advice


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


CASES = {  # the lazy loader in worker processes, the preloaded one (in the main process: the kill -9 test below)
    "workers-2-recipe-accumulate-2": {**RECIPE, "data.num_workers": 2, "trainer.accumulate_steps": 2},
    "preload-recipe-accumulate-2": {**RECIPE, "data.preload": "cpu", "trainer.accumulate_steps": 2},
}


@pytest.mark.parametrize("case", list(CASES))
def test_sigterm_mid_epoch_stops_with_a_checkpoint_and_resumes_exactly(
    tmp_path, cli_overrides, make_config, monkeypatch, case
):
    settings = {"trainer.epochs": 2, "model.dropout": 0.5, "data.batch_size": 4}  # 6 batches an epoch
    settings |= settings_that_exist({**AUGMENT, **CASES[case]})
    assert train.main(cli_overrides(run_name="straight", **settings)) == 0
    batches, accumulate = steps_per_epoch(make_config, settings), settings.get("trainer.accumulate_steps", 1)
    # SIGTERM during a batch of epoch 2 drawn at random (seeded by the case: a failure reproduces), one whose
    # optimizer step is not the epoch's last.
    during = random.Random(case).randrange(batches // accumulate * accumulate - accumulate)
    real_build_model = train.build_model

    def signal_during(*args):
        return signal_after(real_build_model(*args), batches + during, signal.SIGTERM)

    with monkeypatch.context() as patch:
        patch.setattr(train, "build_model", signal_during)
        assert train.main(cli_overrides(run_name="stopped", **settings)) == EXIT_RESUMABLE
    run_dir = tmp_path / "runs" / "stopped"
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    # That batch's optimizer step finishes first: with accumulation, its group's.
    assert state["epoch"] == 1 and state["progress"]["batches"] == (during // accumulate + 1) * accumulate
    log = (run_dir / "train.log").read_text()
    assert "SIGTERM received" in log and f"Continue with: python train.py --resume {run_dir}" in log
    assert train.main(["--resume", str(run_dir)]) == 0
    assert_same_run(run_dir, tmp_path / "runs" / "straight")


KILL = """\
import os, signal, sys, time
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
    during = random.Random("kill -9").randrange(1, batches)  # a batch of epoch 2, drawn at random (seeded)
    script = tmp_path / "kill.py"
    script.write_text(KILL.format(project=str(PROJECT_DIR), forwards=batches + during))
    proc = subprocess.run(
        [sys.executable, str(script), *cli_overrides(run_name="killed", **settings)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run_dir = tmp_path / "runs" / "killed"
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    # trainer.checkpoint_every_steps=2: the last even number of batches before, or the end of epoch 1.
    assert state["epoch"] == 1 and state.get("progress", {"batches": 0})["batches"] == during // 2 * 2
    assert train.main(["--resume", str(run_dir)]) == 0
    assert_same_run(run_dir, tmp_path / "runs" / "straight")


def test_out_of_memory_names_the_batch_size_and_smaller_batches_restart_the_epoch(
    tmp_path, cli_overrides, make_config, monkeypatch
):
    settings = {"trainer.epochs": 2, "data.batch_size": 4, "trainer.checkpoint_every_steps": 2}
    batches, real_build_model = steps_per_epoch(make_config, settings), train.build_model

    def out_of_memory(model):  # in epoch 2's 4th batch, after the checkpoint of its 2nd
        done = [0]

        def hook(module, args):
            done[0] += module.training
            if done[0] == batches + 4:
                raise torch.OutOfMemoryError("out of memory. Tried to allocate 2.00 GiB")

        model.register_forward_pre_hook(hook)
        return model

    with monkeypatch.context() as patch:
        patch.setattr(train, "build_model", lambda *a: out_of_memory(real_build_model(*a)))
        assert train.main(cli_overrides(run_name="oom", **settings)) == 1
    run_dir = tmp_path / "runs" / "oom"
    log = (run_dir / "train.log").read_text()
    assert "Out of memory at data.batch_size=4 (out of memory. Tried to allocate 2.00 GiB)" in log
    assert "data.batch_size=2 trainer.accumulate_steps=2" in log and f"--resume {run_dir}" in log
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["batches"] == 2
    assert train.main(["--resume", str(run_dir), "data.batch_size=2", "trainer.accumulate_steps=2"]) == 0
    log = (run_dir / "train.log").read_text()
    assert "last.pt stopped inside epoch 2; " in log and "change its batches: it starts again" in log
    assert [row["epoch"] for row in csv.DictReader((run_dir / "metrics.csv").open(newline=""))] == ["1", "2"]


def test_out_of_memory_at_a_batch_of_one_does_not_suggest_halving_it(make_config):
    advice = fault_advice(torch.OutOfMemoryError("out of memory"), make_config(**{"data.batch_size": 1}), "runs/x")
    assert advice.startswith("Out of memory at data.batch_size=1 (out of memory). It is 1 already; a smaller model")
    assert "accumulate" not in advice and advice.endswith("continue with: python train.py --resume runs/x")
    assert fault_advice(RuntimeError("something else"), make_config(), "runs/x") is None


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


# The README's SLURM batch script, run by bash as SLURM would, with stand-ins for SLURM's commands: each launcher
# on the train.py line (python, srun, ...) runs the real train.py in one process with the fast test settings added,
# and `scontrol` names this host and notes a requeue. SLURM's USR1 comes from the training process itself, sent to
# its parent (the batch script) in the forward pass number SIGNAL_AT + 1.
LAUNCHER = 'while [ "$1" != train.py ]; do shift; done; exec {python} {launch} "$@" {overrides}'
SCONTROL = 'case "$1" in show) echo localhost ;; requeue) echo "$2" >> "$REQUEUED" ;; esac'
LAUNCH = """\
import os, signal, sys, time
sys.path.insert(0, {project!r})
import train
assert sys.argv[1] == "train.py", sys.argv
signal_at, real_build_model = int(os.environ.get("SIGNAL_AT", -1)), train.build_model
def build_model(*args):
    model, done = real_build_model(*args), [0]
    def hook(module, inputs):
        if module.training:
            if done[0] == signal_at:
                os.kill(os.getppid(), signal.SIGUSR1)  # as SLURM signals the batch script (B:USR1)
                time.sleep(0.3)  # the script passes it back meanwhile
            done[0] += 1
    model.register_forward_pre_hook(hook)
    return model
train.build_model = build_model
sys.exit(train.main(sys.argv[2:]))
"""


def test_the_readme_slurm_script_stops_requeues_and_continues_the_run(tmp_path, cli_overrides, make_config):
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    scripts = [code for code in re.findall(r"```bash\n(.*?)```", readme, re.DOTALL) if "#SBATCH" in code]
    assert len(scripts) == 1
    script = scripts[0]
    for line in ("#SBATCH --signal=B:USR1@120", "#SBATCH --requeue", "scontrol requeue", "--resume auto"):
        assert line in script
    settings = {"trainer.epochs": 2, "data.batch_size": 4}
    launch, bin_dir, requeued = tmp_path / "launch.py", tmp_path / "bin", tmp_path / "requeued"
    launch.write_text(LAUNCH.format(project=str(PROJECT_DIR)))
    values = {"python": sys.executable, "launch": launch, "overrides": shlex.join(cli_overrides(**settings))}
    bin_dir.mkdir()
    line = next(line for line in script.replace("\\\n", " ").splitlines() if "train.py" in line)
    launchers, arguments = (shlex.split(part) for part in line.rstrip(" &").split("train.py"))
    shims = {"scontrol": SCONTROL} | {word: LAUNCHER for word in launchers if not word.startswith("-")}
    for name, body in shims.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body.format(**values)}\n")
        (bin_dir / name).chmod(0o755)
    (tmp_path / "train.sbatch").write_text(script)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "REQUEUED": str(requeued)}
    env |= {"SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "localhost", "SLURM_NNODES": "1"}
    env["SIGNAL_AT"] = str(steps_per_epoch(make_config, settings) + 2)  # in epoch 2's third batch
    command, options = ["bash", str(tmp_path / "train.sbatch")], {"capture_output": True, "text": True}
    first = subprocess.run(command, cwd=PROJECT_DIR, env=env, timeout=300, **options)
    run_dir = tmp_path / "runs" / "job-4242"
    assert requeued.read_text() == "4242\n", first.stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    assert "received: stopping after this optimizer step" in log and "stopped" in log
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["batches"] >= 3  # at the next step
    # The requeued job runs the same command: in this process (cheaper; the script's part was checked above).
    assert arguments == ["run_name=job-$SLURM_JOB_ID", "--resume", "auto"]
    assert train.main([arguments[0].replace("$SLURM_JOB_ID", "4242"), *arguments[1:], *cli_overrides(**settings)]) == 0
    assert "Resumed" in (run_dir / "train.log").read_text()
    assert [row["epoch"] for row in csv.DictReader((run_dir / "metrics.csv").open(newline=""))] == ["1", "2"]
