"""Training: a one-epoch run, the lr schedule and a frozen backbone, refusals, early stopping, checkpoints kept,
gradient accumulation and torch.compile. What every task shares; the task's own numbers are in its test file."""

import csv
import inspect
import logging
import math

import pytest
import torch
import torch.nn as nn

import train
from {{ cookiecutter.package_name }} import checkpoint, engine
from {{ cookiecutter.package_name }}.config import load_config, to_dict
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.data.preload import PreloadedLoader
from {{ cookiecutter.package_name }}.engine import Trainer, build_optimizer, build_scheduler, prepare_model
from {{ cookiecutter.package_name }}.errors import run_main
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.task import EPOCH_FIELDS, MONITORS, build_criterion

HEADER = ["epoch", *EPOCH_FIELDS, "lr", "time_s"]  # metrics.csv
AUGMENT = {"data.random_resized_crop": True, "data.horizontal_flip": True}  # image data: random crops and flips
# Every recipe key on (those of image data where the data has images): their randomness is replayed too.
RECIPE = {"trainer.ema_decay": 0.9, "optim.warmup_epochs": 1}
RECIPE |= {"data.balanced_sampler": True, "trainer.label_smoothing": 0.1}  # classification
RECIPE |= {"trainer.class_weights": "balanced"}  # classification
RECIPE |= {"trainer.loss": "huber"}  # regression
RECIPE |= {"trainer.class_weights": "balanced"}  # multilabel
RECIPE |= {"data.mixup_alpha": 0.2, "data.cutmix_alpha": 1.0, "data.auto_augment": "trivialaugment"}
RECIPE |= {"data.random_erasing": 0.25}


def settings_that_exist(settings: dict) -> dict:
    """The settings whose keys this project's configs/default.yaml has (image augmentation: image data only)."""

    def has(tree, key):
        head, _, rest = key.partition(".")
        return head in tree and (not rest or has(tree[head], rest))

    defaults = to_dict(load_config())
    return {key: value for key, value in settings.items() if has(defaults, key)}


def make_trainer(cfg, run_dir, model=None, loaders=None, device="cpu") -> Trainer:
    """A Trainer wired as train.py wires one: the task's loss, the configured optimizer and schedule."""
    train_loader, val_loader, info = loaders or build_dataloaders(cfg)
    model = prepare_model(build_model(cfg, info) if model is None else model, cfg, torch.device(device))
    optimizer, criterion = build_optimizer(cfg, model), build_criterion(cfg, info)
    scheduler = build_scheduler(cfg, optimizer)
    return Trainer(cfg, model, criterion, optimizer, scheduler, train_loader, val_loader, info, run_dir, device)


def read_metrics(run_dir, header=HEADER) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames == header
        return list(reader)


def snapshot(folder) -> dict:
    """Every file under `folder` with its bytes and modification time."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_fit_one_epoch_in_process(make_config, tmp_path):
    cfg = make_config()
    trainer = make_trainer(cfg, tmp_path / "run")
    before = [p.detach().clone() for p in trainer.model.parameters()]
    history = trainer.fit()
    assert len(history) == 1 and trainer.epoch == 1 and trainer.step == len(trainer.train_loader)
    row = history[0]
    assert list(row) == ["epoch", *EPOCH_FIELDS, "lr", "time_s"] and row["epoch"] == 1
    assert all(math.isfinite(row[key]) for key in EPOCH_FIELDS) and row["train_loss"] > 0 and row["val_loss"] > 0
    assert row["lr"] == pytest.approx(cfg.optim.lr)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))  # it learned
    rows = read_metrics(tmp_path / "run")
    assert len(rows) == 1 and float(rows[0]["val_loss"]) == row["val_loss"]
    assert float(rows[0][cfg.trainer.monitor]) == row[cfg.trainer.monitor] == trainer.best.best
    assert all((tmp_path / "run" / "checkpoints" / name).is_file() for name in ("last.pt", "best.pt"))


def test_the_backbone_learns_at_its_scale_after_its_frozen_epochs(make_config):
    settings = {"trainer.epochs": 3, "model.freeze_backbone_epochs": 1, "optim.backbone_lr_scale": 0.1}
    cfg = make_config(**settings, **{"optim.scheduler": "none", "optim.lr": 1.0})
    model = build_model(cfg, build_dataloaders(cfg)[2])
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    head = {id(p) for p in [m for m in model.modules() if isinstance(m, nn.Linear)][-1].parameters()}
    epochs = []  # {backbone group?: its lr} per epoch
    for _ in range(3):
        for group in optimizer.param_groups:
            assert group["backbone"] == all(id(p) not in head for p in group["params"])
        epochs.append({group["backbone"]: group["lr"] for group in optimizer.param_groups})
        optimizer.step()
        scheduler.step()
    assert [lrs[False] for lrs in epochs] == [1.0, 1.0, 1.0]  # the head: the plain lr every epoch
    assert [lrs[True] for lrs in epochs] == pytest.approx([0.0, 0.1, 0.1])


def test_metrics_log_the_head_lr_and_the_backbone_lr_beside_it(cli_overrides, tmp_path):
    settings = {"trainer.epochs": 3, "model.freeze_backbone_epochs": 1, "optim.backbone_lr_scale": 0.1}
    assert train.main(cli_overrides(run_name="scaled", **settings, **{"optim.lr": 0.02})) == 0
    at = HEADER.index("lr") + 1  # beside the head's lr
    rows = read_metrics(tmp_path / "runs" / "scaled", HEADER[:at] + ["backbone_lr"] + HEADER[at:])
    head = [0.02 * 0.5 * (1 + math.cos(math.pi * epoch / 3)) for epoch in range(3)]  # cosine over 3 epochs
    assert [float(row["lr"]) for row in rows] == pytest.approx(head)  # the head's, not the frozen backbone's 0
    assert [float(row["backbone_lr"]) for row in rows] == pytest.approx([0.0, 0.1 * head[1], 0.1 * head[2]])


def test_a_frozen_backbone_keeps_its_weights_and_statistics_while_the_head_learns(make_config, tmp_path):
    cfg = make_config(**{"trainer.epochs": 1, "model.freeze_backbone_epochs": 1})
    train_loader, val_loader, info = build_dataloaders(cfg)
    model = build_model(cfg, info)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    optimizer = build_optimizer(cfg, model)
    args = (train_loader, val_loader, info, tmp_path / "run", torch.device("cpu"))
    Trainer(cfg, model, build_criterion(cfg, info), optimizer, build_scheduler(cfg, optimizer), *args).fit()
    head = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)][-1]
    changed = {name for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    assert changed == {f"{head}.weight", f"{head}.bias"}  # BatchNorm running statistics included


@pytest.mark.parametrize(
    ("scheduler", "expected"), [("cosine", [1, 2, 3, 2.25, 0.75, 0]), ("none", [1, 2, 3, 3, 3, 3])]
)
def test_warmup_ramps_the_lr_linearly_then_the_schedule_starts(make_config, scheduler, expected):
    cfg = make_config(**{"trainer.epochs": 5, "optim.warmup_epochs": 2, "optim.scheduler": scheduler, "optim.lr": 3})
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.optim.lr)
    scheduler = build_scheduler(cfg, optimizer)
    lrs = []
    for _ in range(6):  # one epoch past the end: cosine stays at its last value, 0
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx(expected)


def test_second_run_with_the_same_name_is_refused(tmp_path, cli_overrides, capsys):
    args = cli_overrides(run_name="taken")
    assert train.main(args) == 0
    run_dir = tmp_path / "runs" / "taken"
    before = snapshot(run_dir)
    assert len(before) >= 5
    capsys.readouterr()
    assert run_main(train.main, args) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"error: run directory {run_dir} already exists")
    assert snapshot(run_dir) == before  # nothing in the existing run changed


# ---- early stopping and the checkpoints kept -------------------------------------------------------------
SCRIPTS = {  # trainer.monitor's value per epoch (patience 2) -> epochs run, best epoch; by which way is better
    "min": ([1.0, 0.9, 0.95, 0.9, 0.95, 0.95], 4, 2),  # improves until epoch 2, then 2 bad epochs (equal: bad)
    "max": ([0.5, 0.5, 0.4, 0.9, 0.9, 0.9], 3, 1),  # equal is no improvement
}


def scripted_rows(monitor: str, values):
    """An engine.epoch_row that gives `monitor` the next of `values` and every other column 0.5: only the monitored
    number moves, so a test shows which one picks best.pt."""
    values = iter(values)
    return lambda *args: {field: next(values) if field == monitor else 0.5 for field in EPOCH_FIELDS}


@pytest.mark.parametrize("monitor", list(MONITORS))
def test_early_stopping(make_config, tmp_path, monkeypatch, monitor):
    """The validation numbers are scripted so that when to stop is exact."""
    values, epochs_run, best_epoch = SCRIPTS[MONITORS[monitor]]
    monkeypatch.setattr(engine, "epoch_row", scripted_rows(monitor, values))
    cfg = make_config(**{"trainer.epochs": 6, "trainer.early_stopping_patience": 2, "trainer.monitor": monitor})
    trainer = make_trainer(cfg, tmp_path)
    assert len(trainer.fit()) == epochs_run
    assert [float(row[monitor]) for row in read_metrics(tmp_path)] == values[:epochs_run]
    for name, epoch in (("best.pt", best_epoch), ("last.pt", epochs_run)):
        assert torch.load(tmp_path / "checkpoints" / name, weights_only=True)["epoch"] == epoch
    assert trainer.best.best == values[best_epoch - 1]


@pytest.mark.parametrize(("keep", "kept"), [(1, []), (3, [2, 5])])
def test_keep_checkpoints_keeps_the_best_epochs_and_deletes_the_rest(make_config, tmp_path, monkeypatch, keep, kept):
    cfg = make_config(**{"trainer.epochs": 6, "trainer.keep_checkpoints": keep})
    monitor = cfg.trainer.monitor  # the default one
    quality = [0.5, 0.6, 0.4, 0.7, 0.65, 0.3]  # best epoch 4, then 5 and 2
    values = quality if MONITORS[monitor] == "max" else [1 - q for q in quality]
    monkeypatch.setattr(engine, "epoch_row", scripted_rows(monitor, values))
    saved = []  # (file, epoch) in the order they were written
    real_save = checkpoint.save_checkpoint
    record = lambda state, path: saved.append((path.name, state["epoch"])) or real_save(state, path)  # noqa: E731
    monkeypatch.setattr(checkpoint, "save_checkpoint", record)
    make_trainer(cfg, tmp_path).fit()
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == sorted(["best.pt", "last.pt", *(f"epoch-{epoch:04d}.pt" for epoch in kept)])
    for name, epoch in [("best.pt", 4), ("last.pt", 6)] + [(f"epoch-{e:04d}.pt", e) for e in kept]:
        assert torch.load(tmp_path / "checkpoints" / name, weights_only=True)["epoch"] == epoch, name
    # Every checkpoint file is written once per epoch at most, and the former best becomes a runner-up
    # without being written again (a second name for the same file).
    assert ("epoch-0002.pt", 2) not in saved and len(saved) == len(set(saved))


# ---- gradient accumulation, logging, torch.compile ------------------------------------------------------
def linear_targets(n: int, generator) -> tuple[torch.Tensor, dict, int]:
    """(targets, data_info, model outputs) of this project's task for `n` samples."""
    return torch.randint(0, 3, (n,), generator=generator), {"classes": ["a", "b", "c"]}, 3  # classification
    return torch.randn(n, 1, generator=generator), {"targets": [{"name": "y", "mean": 0.0, "std": 1.0}]}, 1  # regression
    return torch.randint(0, 2, (n, 3), generator=generator).float(), {"labels": ["a", "b", "c"]}, 3  # multilabel


def linear_trainer(make_config, run_dir, batch_size: int, accumulate: int, n: int = 24, **settings):
    """A Trainer over a linear model and fixed data in a fixed order: gradients are easy to compare."""
    settings = {"trainer.accumulate_steps": accumulate, "optim.name": "sgd", "optim.momentum": 0.0, **settings}
    cfg = make_config(**{"optim.scheduler": "none", **settings})
    generator = torch.Generator().manual_seed(0)
    x, (y, data_info, outputs) = torch.randn(n, 5, generator=generator), linear_targets(n, generator)
    loader = PreloadedLoader(x, y, batch_size, generator=torch.Generator())  # no shuffling: one order for all
    torch.manual_seed(0)
    model = nn.Linear(5, outputs)
    return make_trainer(cfg, run_dir, model, (loader, loader, data_info))


def test_accumulated_small_batches_step_like_one_big_batch(make_config, tmp_path):
    big = linear_trainer(make_config, tmp_path / "big", batch_size=8, accumulate=1)
    small = linear_trainer(make_config, tmp_path / "small", batch_size=4, accumulate=2)
    big.fit()
    small.fit()
    assert big.step == small.step == 3  # 24 samples: 3 optimizer steps either way
    for a, b in zip(big.model.parameters(), small.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_a_short_last_group_is_averaged_over_its_own_batches(make_config, tmp_path):
    # 5 batches of 4 with accumulate_steps=2: groups of 2, 2 and 1 batches -> 3 steps; the last
    # group's gradient is its one batch's mean, like a plain run over those 4 samples.
    grouped = linear_trainer(make_config, tmp_path / "grouped", batch_size=4, accumulate=2, n=20)
    plain = linear_trainer(make_config, tmp_path / "plain", batch_size=8, accumulate=1, n=20)
    grouped.fit()
    plain.fit()  # batches of 8, 8 and 4
    assert grouped.step == plain.step == 3
    for a, b in zip(grouped.model.parameters(), plain.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(("log_interval", "logged_steps"), [(1, [1, 2, 3]), (2, [2]), (4, [])])
def test_log_interval_counts_optimizer_steps(make_config, tmp_path, caplog, log_interval, logged_steps):
    # 6 batches of 4 with accumulate_steps=2: 3 optimizer steps; batches would log at 2, 4 and 6.
    trainer = linear_trainer(make_config, tmp_path, 4, 2, **{"trainer.log_interval": log_interval})
    with caplog.at_level(logging.INFO):
        trainer.fit()
    readouts = [r.getMessage().split() for r in caplog.records if r.getMessage().startswith("epoch 1 step ")]
    assert [int(words[3]) for words in readouts] == logged_steps
    assert all("samples/s" in " ".join(words) for words in readouts)


def test_compiled_model_saves_and_loads_bare_names(make_config, tmp_path, monkeypatch):
    # The "eager" backend wraps the model exactly as torch.compile does, without a slow C++ build.
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: real_compile(model, backend="eager"))
    cfg = make_config(**{"trainer.compile": True})
    loaders = build_dataloaders(cfg)
    bare = build_model(cfg, loaders[2])
    model = prepare_model(bare, cfg, torch.device("cpu"))  # as train.py: before the optimizer is built
    assert model._orig_mod is bare  # compiled
    optimizer = build_optimizer(cfg, model)
    assert {id(p) for group in optimizer.param_groups for p in group["params"]} == {id(p) for p in bare.parameters()}
    trainer = Trainer(cfg, model, build_criterion(cfg, loaders[2]), optimizer, None, *loaders, tmp_path, "cpu")
    assert trainer.model is model and trainer.eval_model is bare  # the Trainer changes nothing it is given
    trainer.fit()
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert not any(key.startswith("_orig_mod.") for key in state["model"])
    fresh = build_model(cfg, trainer.data_info)
    fresh.load_state_dict(state["model"])  # a plain, uncompiled model takes them as they are


def test_train_one_epoch_takes_its_settings_by_name():
    # model, criterion, optimizer and loader by position; the rest by name, so a call cannot swap them.
    params = inspect.signature(engine.train_one_epoch).parameters.values()
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == ["model", "criterion", "optimizer", "loader"]
    by_name = {p.name for p in params if p.kind is p.KEYWORD_ONLY}
    assert {"device", "epoch", "cfg", "ema", "progress", "on_step"} <= by_name
