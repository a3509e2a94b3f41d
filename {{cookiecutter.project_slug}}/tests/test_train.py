"""Training: a one-epoch run, the CLI end to end, evaluation, refusals, early stopping and exact resume."""

import csv
import errno
import inspect
import json
import logging
import math

import pytest
import torch
import torch.nn as nn

import evaluate
import train
from {{ cookiecutter.package_name }} import checkpoint, engine
from {{ cookiecutter.package_name }}.config import ConfigError, load_config, to_dict
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.data.preload import PreloadedLoader
from {{ cookiecutter.package_name }}.engine import Trainer, build_optimizer, build_scheduler, prepare_model
from {{ cookiecutter.package_name }}.errors import run_main
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.report import evaluate_split
from {{ cookiecutter.package_name }}.task import class_weights

HEADER = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr", "time_s"]  # metrics.csv
AUGMENT = {"data.random_resized_crop": True, "data.horizontal_flip": True}  # image data: random crops and flips


def settings_that_exist(settings: dict) -> dict:
    """The settings whose keys this project's configs/default.yaml has (image augmentation: image data only)."""

    def has(tree, key):
        head, _, rest = key.partition(".")
        return head in tree and (not rest or has(tree[head], rest))

    defaults = to_dict(load_config())
    return {key: value for key, value in settings.items() if has(defaults, key)}


def make_trainer(cfg, run_dir, model=None, loaders=None, device="cpu") -> Trainer:
    """A Trainer wired as train.py wires one: cross-entropy, the configured optimizer and schedule."""
    train_loader, val_loader, info = loaders or build_dataloaders(cfg)
    model = prepare_model(build_model(cfg, info) if model is None else model, cfg, torch.device(device))
    optimizer, criterion = build_optimizer(cfg, model), nn.CrossEntropyLoss()
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


def model_tensors(path) -> dict:
    return torch.load(path, weights_only=True)["model"]


def test_fit_one_epoch_in_process(make_config, tmp_path):
    cfg = make_config()
    trainer = make_trainer(cfg, tmp_path / "run")
    before = [p.detach().clone() for p in trainer.model.parameters()]
    history = trainer.fit()
    assert len(history) == 1 and trainer.epoch == 1 and trainer.step == len(trainer.train_loader)
    row = history[0]
    assert row["epoch"] == 1 and all(math.isfinite(row[key]) and row[key] > 0 for key in ("train_loss", "val_loss"))
    assert all(0.0 <= row[key] <= 1.0 for key in ("train_acc", "val_acc"))
    assert row["lr"] == pytest.approx(cfg.optim.lr)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))  # it learned
    rows = read_metrics(tmp_path / "run")
    assert len(rows) == 1 and float(rows[0]["val_loss"]) == row["val_loss"]
    assert all((tmp_path / "run" / "checkpoints" / name).is_file() for name in ("last.pt", "best.pt"))


def test_cli_train_then_evaluate(tmp_path, cli_overrides, run_script, capsys):
    # With label smoothing, class weights and a warmup epoch: they reach training, validation and evaluate.py.
    recipe = {"trainer.label_smoothing": 0.2, "trainer.class_weights": "balanced", "optim.warmup_epochs": 1}
    proc = run_script("train.py", *cli_overrides(run_name="smoke", **{"trainer.epochs": 2, **recipe}))
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "runs" / "smoke"
    for name in ("config.yaml", "train.log", "metrics.csv", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run_dir / name).is_file(), name
    rows = read_metrics(run_dir)
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert all(math.isfinite(float(row["train_loss"])) and math.isfinite(float(row["val_loss"])) for row in rows)
    assert "epoch 2/2" in (run_dir / "train.log").read_text()
    saved = load_config(run_dir / "config.yaml")  # the resolved config loads back as a config file
    assert saved.run_name == "smoke" and saved.trainer.epochs == 2
    assert not list(run_dir.rglob(".*tmp*"))  # no temp files left

    capsys.readouterr()
    assert evaluate.main([str(run_dir / "checkpoints" / "last.pt")]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()  # stdout: one JSON object, nothing else
    result = json.loads(line)
    # The same criterion and evaluate() as training's validation: exactly the last row's numbers.
    assert result["epoch"] == 2 and result["num_samples"] > 0
    assert result["loss"] == float(rows[-1]["val_loss"])
    assert result["accuracy"] == float(rows[-1]["val_acc"])
    # Smoothing was in effect: plain cross-entropy gives another loss. The warmup epoch ran at half the lr.
    assert evaluate.main([str(run_dir), "trainer.label_smoothing=0"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] != result["loss"]
    assert [float(row["lr"]) for row in rows] == pytest.approx([saved.optim.lr / 2, saved.optim.lr])


def test_balanced_class_weights_make_every_class_weigh_the_same(make_config, caplog):
    cfg = make_config(**{"trainer.class_weights": "balanced"})
    train_loader, _, info = build_dataloaders(cfg)
    labels = torch.cat([targets for _, targets in train_loader])
    assert info["class_counts"] == torch.bincount(labels, minlength=info["num_classes"]).tolist()  # train's only
    with caplog.at_level("INFO"):
        weights = class_weights(cfg, {"class_counts": [10, 30, 60]})
    assert weights.tolist() == pytest.approx([100 / 30, 100 / 90, 100 / 180])  # n / (classes x count)
    assert (weights * torch.tensor([10, 30, 60])).tolist() == pytest.approx([100 / 3] * 3)  # each class's total
    assert "class weights from the train counts [10, 30, 60]: [3.3333, 1.1111, 0.5556]" in caplog.text
    assert class_weights(make_config(), {"class_counts": [1, 2]}) is None  # none: the default


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
    rows = read_metrics(tmp_path / "runs" / "scaled", HEADER[:7] + ["backbone_lr"] + HEADER[7:])
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
    Trainer(cfg, model, nn.CrossEntropyLoss(), optimizer, build_scheduler(cfg, optimizer), *args).fit()
    head = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)][-1]
    changed = {name for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    assert changed == {f"{head}.weight", f"{head}.bias"}  # BatchNorm running statistics included


def test_weighted_val_loss_is_one_number_at_every_batch_size_and_matches_evaluate_and_sklearn(make_config):
    log_loss = pytest.importorskip("sklearn.metrics", reason='needs scikit-learn: pip install -e ".[dev]"').log_loss

    cfg = make_config()
    _, val_loader, info = build_dataloaders(cfg)
    weight = torch.arange(1.0, len(info["classes"]) + 1) ** 1.5  # a weighted mean divides by the summed weights
    criterion = nn.CrossEntropyLoss(weight=weight)
    model = build_model(cfg, info).eval()
    losses = []
    for batch_size in (7, 64):  # batches of 7 and a shorter last one, or all in one
        sized = make_config(**{"data.batch_size": batch_size})
        loader = build_dataloaders(sized)[1]
        losses.append(engine.evaluate(model, criterion, loader, torch.device("cpu"), sized)["loss"])
        report = evaluate_split(model, criterion, loader.dataset, info, sized, torch.device("cpu"), None)
        assert report["loss"] == pytest.approx(losses[-1], rel=1e-9)  # evaluate.py's number
    with torch.no_grad():
        pairs = [(model(inputs), targets) for inputs, targets in val_loader]
    probs, targets = torch.cat([p for p, _ in pairs]).double().softmax(1), torch.cat([t for _, t in pairs])
    expected = log_loss(targets, probs, sample_weight=weight[targets].numpy(), labels=range(len(weight)))
    assert losses == pytest.approx([expected, expected], rel=1e-5)


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


# ---- early stopping --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("monitor", "values", "epochs_run", "best_epoch"),
    [
        ("val_loss", [1.0, 0.9, 0.95, 0.95, 0.95, 0.95], 4, 2),  # improves until epoch 2, then 2 bad epochs
        ("val_acc", [0.5, 0.5, 0.4, 0.9, 0.9, 0.9], 3, 1),  # equal is no improvement
        ("val_macro_f1", [0.5, 0.7, 0.6, 0.7, 0.9, 0.9], 4, 2),  # higher is better, as for accuracy
    ],
)
def test_early_stopping(make_config, tmp_path, monkeypatch, monitor, values, epochs_run, best_epoch):
    """The validation numbers are scripted so that when to stop is exact."""
    scripted = iter(values)

    def fake_evaluate(*args, **kwargs):
        value = next(scripted)
        # Only the monitored number moves, so the test shows which one picks best.pt.
        loss, accuracy, macro_f1 = (value if monitor == key else 0.5 for key in ("val_loss", "val_acc", "val_macro_f1"))
        return {"loss": loss, "accuracy": accuracy, "num_samples": 1, "macro_f1": macro_f1}

    monkeypatch.setattr(engine, "evaluate", fake_evaluate)
    cfg = make_config(**{"trainer.epochs": 6, "trainer.early_stopping_patience": 2, "trainer.monitor": monitor})
    trainer = make_trainer(cfg, tmp_path)
    assert len(trainer.fit()) == epochs_run
    assert len(read_metrics(tmp_path)) == epochs_run
    for name, epoch in (("best.pt", best_epoch), ("last.pt", epochs_run)):
        assert torch.load(tmp_path / "checkpoints" / name, weights_only=True)["epoch"] == epoch
    assert trainer.best.best == values[best_epoch - 1]


@pytest.mark.parametrize(("keep", "kept"), [(1, []), (3, [2, 5])])
def test_keep_checkpoints_keeps_the_best_epochs_and_deletes_the_rest(make_config, tmp_path, monkeypatch, keep, kept):
    values = iter([0.5, 0.6, 0.4, 0.7, 0.65, 0.3])  # val_acc: best epoch 4, then 5 and 2
    saved = []  # (file, epoch) in the order they were written

    monkeypatch.setattr(engine, "evaluate", lambda *a, **k: {"loss": 1.0, "accuracy": next(values), "macro_f1": 0.5})
    real_save = checkpoint.save_checkpoint
    record = lambda state, path: saved.append((path.name, state["epoch"])) or real_save(state, path)  # noqa: E731
    monkeypatch.setattr(checkpoint, "save_checkpoint", record)
    cfg = make_config(**{"trainer.epochs": 6, "trainer.keep_checkpoints": keep})
    make_trainer(cfg, tmp_path).fit()
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == sorted(["best.pt", "last.pt", *(f"epoch-{epoch:04d}.pt" for epoch in kept)])
    for name, epoch in [("best.pt", 4), ("last.pt", 6)] + [(f"epoch-{e:04d}.pt", e) for e in kept]:
        assert torch.load(tmp_path / "checkpoints" / name, weights_only=True)["epoch"] == epoch, name
    # Every checkpoint file is written once per epoch at most, and the former best becomes a runner-up
    # without being written again (a second name for the same file).
    assert ("epoch-0002.pt", 2) not in saved and len(saved) == len(set(saved))


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


# Every recipe key on (those of image data where the data has images): their randomness is replayed too.
RECIPE = {"trainer.ema_decay": 0.9, "data.balanced_sampler": True, "trainer.label_smoothing": 0.1}
RECIPE |= {"data.mixup_alpha": 0.2, "data.cutmix_alpha": 1.0, "data.auto_augment": "trivialaugment"}
RECIPE |= {"data.random_erasing": 0.25, "optim.warmup_epochs": 1, "trainer.class_weights": "balanced"}


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


# ---- gradient accumulation, logging, torch.compile ------------------------------------------------------
def linear_trainer(make_config, run_dir, batch_size: int, accumulate: int, n: int = 24, **settings):
    """A Trainer over a linear model and fixed data in a fixed order: gradients are easy to compare."""
    settings = {"trainer.accumulate_steps": accumulate, "optim.name": "sgd", "optim.momentum": 0.0, **settings}
    cfg = make_config(**{"optim.scheduler": "none", **settings})
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 5, generator=generator), torch.randint(0, 3, (n,), generator=generator)
    loader = PreloadedLoader(x, y, batch_size, generator=torch.Generator())  # no shuffling: one order for all
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    return make_trainer(cfg, run_dir, model, (loader, loader, {"classes": ["a", "b", "c"]}))


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
    trainer = Trainer(cfg, model, nn.CrossEntropyLoss(), optimizer, None, *loaders, tmp_path, "cpu")
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
