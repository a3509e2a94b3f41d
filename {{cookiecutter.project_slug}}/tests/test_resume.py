"""Resuming: a run stopped by Ctrl-C mid-epoch or between its checkpoints ends as an uninterrupted one would,
--resume auto, a finished run, more epochs, changed optim settings; after a full disk or a killed data-loading
worker; refusals.

test_preemption.py resumes mid-epoch with worker processes, preloading and signals.
"""

import errno
import math
import os
import signal

import pytest
import torch
from test_train import AUGMENT, RECIPE, read_metrics, settings_that_exist, snapshot
from torch.utils.data import DataLoader, Dataset, get_worker_info

import train
from {{ cookiecutter.package_name }} import checkpoint
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint
from {{ cookiecutter.package_name }}.config import ConfigError, load_config
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.errors import run_main


def model_tensors(path) -> dict:
    return torch.load(path, weights_only=True)["model"]


def test_resume_with_config_is_refused(tmp_path, cli_overrides):
    assert train.main(cli_overrides(run_name="run")) == 0
    run_dir = tmp_path / "runs" / "run"
    before = snapshot(run_dir)
    other = tmp_path / "other.yaml"
    other.write_text("trainer:\n  epochs: 5\n")
    with pytest.raises(ConfigError, match="--resume"):
        train.main(["--resume", str(run_dir), "--config", str(other)])
    assert snapshot(run_dir) == before


def test_resume_of_a_missing_path_is_a_clean_error(tmp_path, capsys):
    missing = tmp_path / "runs" / "never-ran"
    assert run_main(train.main, ["--resume", str(missing)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: checkpoint ") and str(missing) in line
    assert not missing.exists()


def test_a_full_disk_stops_the_run_and_leaves_the_last_checkpoint_intact(tmp_path, cli_overrides, capsys, monkeypatch):
    real_save = torch.save

    def full_disk(state, file, *args, **kwargs):
        if state["epoch"] == 2 and "last.pt" in str(getattr(file, "name", "")):
            file.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(state, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    assert run_main(train.main, cli_overrides(run_name="full", **{"trainer.epochs": 3})) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    run_dir = tmp_path / "runs" / "full"
    assert "No space left on device" in error and "last.pt from before is intact" in error
    assert f"python train.py --resume {run_dir}" in error
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt"]  # no temp file
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    monkeypatch.undo()
    assert train.main(["--resume", str(run_dir)]) == 0  # space again: the run goes on from epoch 1
    assert len(read_metrics(run_dir)) == 3


class DyingWorkers(Dataset):
    """The train set, except that a worker process loading a sample once `flag` exists is killed, as by the OOM
    killer (SIGKILL: no handler, no cleanup)."""

    def __init__(self, dataset, flag):
        self.dataset, self.flag = dataset, flag

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        if get_worker_info() is not None and self.flag.exists():
            os.kill(os.getpid(), signal.SIGKILL)
        return self.dataset[index]


def test_a_killed_data_loading_worker_explains_what_to_change_and_keeps_the_checkpoint(
    tmp_path, cli_overrides, monkeypatch
):
    settings = {"trainer.epochs": 2, "data.preload": "false", "data.num_workers": 2}
    flag, real_build_dataloaders = tmp_path / "kill-workers", train.build_dataloaders

    def dying_workers(*args, **kwargs):  # the same batches, loaded by workers that die in epoch 2
        loader, val_loader, data_info = real_build_dataloaders(*args, **kwargs)
        dataset = DyingWorkers(loader.dataset, flag)
        options = {"sampler": loader.sampler, "collate_fn": loader.collate_fn, "generator": loader.generator}
        return DataLoader(dataset, loader.batch_size, num_workers=2, **options), val_loader, data_info

    with monkeypatch.context() as patch:
        patch.setattr(train, "build_dataloaders", dying_workers)
        code = train.main(cli_overrides(run_name="workers", **settings), callbacks=[lambda *_: flag.touch()])
    assert code == 1
    run_dir = tmp_path / "runs" / "workers"
    log = (run_dir / "train.log").read_text()
    assert "A data-loading worker process died (DataLoader worker (pid" in log
    assert "data.num_workers=2 now" in log and f"continue with: python train.py --resume {run_dir}" in log
    assert "Traceback" not in log
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and "progress" not in state  # epoch 1's, intact
    assert train.main(["--resume", str(run_dir), "data.num_workers=0"]) == 0
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 2


# ---- exact resume ----------------------------------------------------------------------------------------
def interrupt_after(model, steps: int):
    """Make the model raise KeyboardInterrupt (as Ctrl-C would) in the training forward pass after `steps` steps.

    A forward pre-hook: no parameters, no buffers, no RNG draws, so the run is otherwise untouched.
    """
    done = 0

    def hook(module, args):
        nonlocal done
        if module.training:
            if done == steps:
                raise KeyboardInterrupt
            done += 1

    model.register_forward_pre_hook(hook)
    return model


@pytest.mark.parametrize(
    ("interrupt", "num_workers", "recipe"),
    # before_saving_last: killed after best.pt was written, before last.pt
    # (test_preemption.py resumes mid-epoch with workers, preloading and every recipe key)
    [("mid_epoch", 0, {}), ("before_saving_last", 0, {}), ("mid_epoch", 0, RECIPE)],
    ids=["mid_epoch", "before_saving_last", "recipe"],
)
def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(
    tmp_path, cli_overrides, make_config, monkeypatch, interrupt, num_workers, recipe
):
    settings = {"trainer.epochs": 3, "data.num_workers": num_workers, "optim.scheduler": "cosine"}
    settings |= {"model.dropout": 0.5, **settings_that_exist({**AUGMENT, **recipe})}  # randomness is replayed too
    assert train.main(cli_overrides(run_name="straight", **settings)) == 0

    with monkeypatch.context() as patch:
        if interrupt == "mid_epoch":  # stop in epoch 2, after two of its steps
            steps_per_epoch = len(build_dataloaders(make_config(**settings))[0])
            assert steps_per_epoch > 2
            real_build_model = train.build_model
            patch.setattr(train, "build_model", lambda *a: interrupt_after(real_build_model(*a), steps_per_epoch + 2))
        else:
            real_save = checkpoint.save_checkpoint

            def save_or_die(state, path):
                if path.name == "last.pt" and state["epoch"] == 2:
                    raise KeyboardInterrupt
                real_save(state, path)

            patch.setattr(checkpoint, "save_checkpoint", save_or_die)
        assert train.main(cli_overrides(run_name="interrupted", **settings)) == 130
    runs = tmp_path / "runs"
    assert torch.load(runs / "interrupted" / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    assert len(read_metrics(runs / "interrupted")) == 1

    assert train.main(["--resume", str(runs / "interrupted")]) == 0

    straight = torch.load(runs / "straight" / "checkpoints" / "last.pt", weights_only=True)
    resumed = torch.load(runs / "interrupted" / "checkpoints" / "last.pt", weights_only=True)
    for entry in ("model", "model_ema") if recipe else ("model",):  # the EMA's weights too
        assert straight[entry].keys() == resumed[entry].keys()
        for key in straight[entry]:
            assert torch.equal(straight[entry][key], resumed[entry][key]), (entry, key)
    assert straight.get("ema_updates") == resumed.get("ema_updates")
    rows_straight, rows_resumed = read_metrics(runs / "straight"), read_metrics(runs / "interrupted")
    assert len(rows_resumed) == 3
    for a, b in zip(rows_straight, rows_resumed, strict=True):
        a.pop("time_s"), b.pop("time_s")
        assert a == b
    assert "Resumed" in (runs / "interrupted" / "train.log").read_text()


def test_resume_auto_starts_or_continues_the_named_run(tmp_path, cli_overrides, capsys):
    # A requeued job runs the same command every time.
    command = ["--resume", "auto", *cli_overrides(run_name="job")]
    assert train.main(command) == 0  # nothing to continue yet: the run starts
    run_dir = tmp_path / "runs" / "job"
    assert [row["epoch"] for row in read_metrics(run_dir)] == ["1"]
    assert train.main([*command, "trainer.epochs=2"]) == 0  # again, with one more epoch: it continues
    assert [row["epoch"] for row in read_metrics(run_dir)] == ["1", "2"]
    assert "--resume auto: continuing" in capsys.readouterr().err  # said before the run's log file opens
    assert "Resumed" in (run_dir / "train.log").read_text(encoding="utf-8")
    # Stopped before its first checkpoint: started again in its run dir, not refused.
    early = tmp_path / "runs" / "early"
    (early / "checkpoints").mkdir(parents=True)
    (early / "train.log").write_text("killed in epoch 1\n", encoding="utf-8")
    assert train.main(["--resume", "auto", *cli_overrides(run_name="early")]) == 0
    assert [row["epoch"] for row in read_metrics(early)] == ["1"]
    assert (early / "train.log").read_text(encoding="utf-8").startswith("killed in epoch 1")  # appended to
    capsys.readouterr()
    assert run_main(train.main, ["--resume", "auto", *cli_overrides()]) == 2  # which run? a clean error
    assert "--resume auto needs run_name=" in capsys.readouterr().err


def test_resume_of_a_finished_run_changes_no_weights(tmp_path, cli_overrides):
    assert train.main(cli_overrides(run_name="done")) == 0
    run_dir = tmp_path / "runs" / "done"
    before = model_tensors(run_dir / "checkpoints" / "last.pt")
    rows = read_metrics(run_dir)
    assert train.main(["--resume", str(run_dir)]) == 0
    after = model_tensors(run_dir / "checkpoints" / "last.pt")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert read_metrics(run_dir) == rows


def test_resume_with_more_epochs_stretches_the_schedule(tmp_path, cli_overrides):
    assert train.main(cli_overrides(run_name="short", **{"optim.scheduler": "cosine", "optim.lr": 0.01})) == 0
    run_dir = tmp_path / "runs" / "short"
    assert train.main(["--resume", str(run_dir), "trainer.epochs=3"]) == 0
    lrs = [float(row["lr"]) for row in read_metrics(run_dir)]
    # cosine over the new 3 epochs, continuing at epoch 2 (not the finished 1-epoch schedule's end, lr 0)
    assert lrs == pytest.approx([0.01 * 0.5 * (1 + math.cos(math.pi * e / 3)) for e in range(3)])


def test_resume_applies_changed_optim_settings_as_config_yaml_records_them(tmp_path, cli_overrides, capsys):
    assert train.main(cli_overrides(run_name="tuned", **{"optim.lr": 0.003, "optim.weight_decay": 0.01})) == 0
    run_dir = tmp_path / "runs" / "tuned"
    changes = ["trainer.epochs=2", "optim.lr=0.0007", "optim.weight_decay=0.03"]
    capsys.readouterr()
    assert train.main(["--resume", str(run_dir), *changes]) == 0
    assert "optim.lr 0.003 -> 0.0007, optim.weight_decay 0.01 -> 0.03" in capsys.readouterr().err
    saved = load_config(run_dir / "config.yaml").optim
    assert (saved.lr, saved.weight_decay) == (0.0007, 0.03)
    # The run did what config.yaml says: epoch 2 at the new lr (cosine over 2 epochs: half of it), new decay.
    assert float(read_metrics(run_dir)[1]["lr"]) == pytest.approx(0.0007 * 0.5)
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    groups = state["optimizer"]["param_groups"]
    assert sorted({group["weight_decay"] for group in groups}) == [0.0, 0.03]  # biases and norms: none
    assert {group["initial_lr"] for group in groups} == {0.0007} and set(state["scheduler"]["base_lrs"]) == {0.0007}
