"""Training: a one-epoch run, the CLI end to end, evaluation, refusals, early stopping and exact resume."""

import csv
import json
import math

import pytest
import torch

import train
from {{ cookiecutter.package_name }} import trainer as trainer_module
from {{ cookiecutter.package_name }}.config import ConfigError, load_config
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.trainer import METRIC_FIELDS, Trainer

HEADER = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time_s"]


def read_metrics(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames == HEADER
        return list(reader)


def snapshot(folder) -> dict:
    """Every file under `folder` with its bytes and modification time."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def model_tensors(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_metric_fields_are_the_contract():
    assert METRIC_FIELDS == HEADER


def test_fit_one_epoch_in_process(make_config, tmp_path):
    cfg = make_config()
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    train_loader, val_loader, info = build_dataloaders(cfg)
    model = build_model(cfg, info)
    before = [p.detach().clone() for p in model.parameters()]
    history = Trainer(cfg, model, train_loader, val_loader, info, run_dir, "cpu").fit()
    assert len(history) == 1
    row = history[0]
    assert row["epoch"] == 1
    for key in ("train_loss", "val_loss"):
        assert math.isfinite(row[key]) and row[key] > 0
    for key in ("train_acc", "val_acc"):
        assert 0.0 <= row[key] <= 1.0
    assert row["lr"] == pytest.approx(cfg.optim.lr)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # it learned
    rows = read_metrics(run_dir)
    assert len(rows) == 1 and float(rows[0]["val_loss"]) == row["val_loss"]
    assert (run_dir / "checkpoints" / "last.pt").is_file() and (run_dir / "checkpoints" / "best.pt").is_file()


def test_cli_train_then_evaluate(tmp_path, cli_overrides, run_script):
    proc = run_script("train.py", *cli_overrides(run_name="smoke"))
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "runs" / "smoke"
    for name in ("config.yaml", "train.log", "metrics.csv", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run_dir / name).is_file(), name
    rows = read_metrics(run_dir)
    assert len(rows) == 1 and rows[0]["epoch"] == "1"
    assert math.isfinite(float(rows[0]["train_loss"])) and math.isfinite(float(rows[0]["val_loss"]))
    assert "epoch 1/1" in (run_dir / "train.log").read_text()
    saved = load_config(run_dir / "config.yaml")  # the resolved config loads back as a config file
    assert saved.run_name == "smoke" and saved.trainer.epochs == 1
    assert not list(run_dir.rglob(".*tmp*"))  # no temp files left

    proc = run_script("evaluate.py", run_dir / "checkpoints" / "best.pt")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["loss"] == pytest.approx(float(rows[0]["val_loss"]), abs=1e-6)
    assert result["accuracy"] == pytest.approx(float(rows[0]["val_acc"]), abs=1e-6)


def test_second_run_with_the_same_name_is_refused(tmp_path, cli_overrides, run_script):
    args = cli_overrides(run_name="taken")
    assert train.main(args) == 0
    run_dir = tmp_path / "runs" / "taken"
    before = snapshot(run_dir)
    assert len(before) >= 5
    proc = run_script("train.py", *args)
    assert proc.returncode != 0
    assert str(run_dir) in proc.stderr and "Traceback" not in proc.stderr
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


def test_resume_of_a_missing_path_is_a_clean_error(tmp_path, run_script):
    missing = tmp_path / "runs" / "never-ran"
    proc = run_script("train.py", "--resume", missing)
    assert proc.returncode != 0
    assert str(missing) in proc.stderr and "Traceback" not in proc.stderr
    assert not missing.exists()


# ---- early stopping --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("monitor", "values", "epochs_run", "best_epoch"),
    [
        ("val_loss", [1.0, 0.9, 0.95, 0.95, 0.95, 0.95], 4, 2),  # improves until epoch 2, then 2 bad epochs
        ("val_acc", [0.5, 0.5, 0.4, 0.9, 0.9, 0.9], 3, 1),  # equal is no improvement
    ],
)
def test_early_stopping(make_config, tmp_path, monkeypatch, monitor, values, epochs_run, best_epoch):
    """The validation numbers are scripted so that when to stop is exact."""
    scripted = iter(values)

    def fake_evaluate(*args, **kwargs):
        value = next(scripted)
        if monitor == "val_loss":
            return {"loss": value, "accuracy": 0.5, "num_samples": 1}
        return {"loss": 1.0, "accuracy": value, "num_samples": 1}

    monkeypatch.setattr(trainer_module, "evaluate", fake_evaluate)
    cfg = make_config(**{"trainer.epochs": 6, "trainer.early_stopping_patience": 2, "trainer.monitor": monitor})
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    train_loader, val_loader, info = build_dataloaders(cfg)
    trainer = Trainer(cfg, build_model(cfg, info), train_loader, val_loader, info, run_dir, "cpu")
    history = trainer.fit()
    assert len(history) == epochs_run
    assert len(read_metrics(run_dir)) == epochs_run
    assert torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)["epoch"] == best_epoch
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == epochs_run
    assert trainer.best_metric == values[best_epoch - 1]


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
    ("interrupt", "num_workers"),
    [
        ("mid_epoch", 0),
        ("before_saving_last", 0),  # killed after best.pt was written but before last.pt
{% if cookiecutter.dataset_type != "tabular_csv" %}
        ("mid_epoch", 2),  # augmentation runs in the worker processes
{% endif %}
    ],
)
def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(
    tmp_path, cli_overrides, monkeypatch, interrupt, num_workers
):
    settings = {
        "trainer.epochs": 3,
        "data.num_workers": num_workers,
        "optim.scheduler": "cosine",
        "model.dropout": 0.5,  # randomness in the loop must be replayed too
{% if cookiecutter.dataset_type != "tabular_csv" %}
        "data.random_resized_crop": True,
        "data.horizontal_flip": True,
{% endif %}
    }
    assert train.main(cli_overrides(run_name="straight", **settings)) == 0

    with monkeypatch.context() as patch:
        if interrupt == "mid_epoch":  # stop in epoch 2, after two of its steps
            steps_per_epoch = len(build_dataloaders(load_config(train.DEFAULT_CONFIG, cli_overrides(**settings)))[0])
            assert steps_per_epoch > 2
            real_build_model = train.build_model
            patch.setattr(train, "build_model", lambda *a: interrupt_after(real_build_model(*a), steps_per_epoch + 2))
        else:
            real_save = trainer_module.save_checkpoint

            def save_or_die(state, path):
                if path.name == "last.pt" and state["epoch"] == 2:
                    raise KeyboardInterrupt
                real_save(state, path)

            patch.setattr(trainer_module, "save_checkpoint", save_or_die)
        assert train.main(cli_overrides(run_name="interrupted", **settings)) == 130
    runs = tmp_path / "runs"
    assert torch.load(runs / "interrupted" / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    assert len(read_metrics(runs / "interrupted")) == 1

    assert train.main(["--resume", str(runs / "interrupted")]) == 0

    straight = model_tensors(runs / "straight" / "checkpoints" / "last.pt")
    resumed = model_tensors(runs / "interrupted" / "checkpoints" / "last.pt")
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    rows_straight, rows_resumed = read_metrics(runs / "straight"), read_metrics(runs / "interrupted")
    assert len(rows_resumed) == 3
    for a, b in zip(rows_straight, rows_resumed, strict=True):
        a.pop("time_s"), b.pop("time_s")
        assert a == b
    assert "Resumed" in (runs / "interrupted" / "train.log").read_text()


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
{% if cookiecutter.gpu != "none" %}


# ---- the GPU fast path, exercised on the CPU where it can be ----------------------


@pytest.mark.parametrize(
    ("amp", "amp_dtype", "bf16_supported", "expected"),
    [
        (True, "auto", True, torch.bfloat16),
        (True, "auto", False, torch.float16),
        (True, "float16", True, torch.float16),
        (True, "bfloat16", False, torch.bfloat16),
        (False, "auto", True, None),
    ],
)
def test_amp_dtype_on_cuda(make_config, monkeypatch, amp, amp_dtype, bf16_supported, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_supported)
    cfg = make_config(**{"trainer.amp": amp, "trainer.amp_dtype": amp_dtype})
    assert trainer_module.amp_dtype_for(cfg, torch.device("cuda")) == expected


def test_no_amp_and_no_scaler_on_the_cpu(make_config, tmp_path):
    cfg = make_config()
    train_loader, val_loader, info = build_dataloaders(cfg)
    trainer = Trainer(cfg, build_model(cfg, info), train_loader, val_loader, info, tmp_path, "cpu")
    assert trainer.amp_dtype is None
    assert not trainer.scaler.is_enabled()
    assert trainer.memory_format == torch.preserve_format  # channels_last is for CUDA only
    assert not train_loader.pin_memory  # nothing to pin for without CUDA


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_and_grad_scaler_path_trains(make_config, tmp_path, monkeypatch, dtype):
    """The CUDA AMP branch (autocast, GradScaler with unscale_ before clipping), run on the CPU."""
    monkeypatch.setattr(trainer_module, "amp_dtype_for", lambda cfg, device: dtype)
    cfg = make_config(**{"trainer.grad_clip_norm": 1.0, "trainer.epochs": 2})
    train_loader, val_loader, info = build_dataloaders(cfg)
    trainer = Trainer(cfg, build_model(cfg, info), train_loader, val_loader, info, tmp_path, "cpu")
    assert trainer.scaler.is_enabled() == (dtype == torch.float16)  # loss scaling only for fp16
    history = trainer.fit()
    assert all(math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"]) for row in history)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    if dtype == torch.float16:
        assert state["scaler"]["scale"] > 0  # the scaler's state is checkpointed for resume
{% if cookiecutter.dataset_type != "tabular_csv" %}


def test_channels_last_batches_and_model(make_config, tmp_path):
    cfg = make_config()
    train_loader, val_loader, info = build_dataloaders(cfg)
    trainer = Trainer(cfg, build_model(cfg, info), train_loader, val_loader, info, tmp_path, "cpu")
    trainer.memory_format = torch.channels_last  # what a CUDA device gets with trainer.channels_last
    inputs, targets = next(iter(train_loader))
    moved, _ = trainer_module.move_batch(inputs, targets, torch.device("cpu"), torch.channels_last)
    assert moved.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(moved, inputs)  # same values, other layout
    trainer.model.to(memory_format=torch.channels_last)
    assert math.isfinite(trainer.fit()[0]["train_loss"])
{% endif %}
{% endif %}


def linear_trainer(make_config, tmp_path, batch_size: int, accumulate: int, n: int = 24):
    """A Trainer over a linear model and fixed data in a fixed order: gradients are easy to compare."""
    from {{ cookiecutter.package_name }}.data.preload import PreloadedLoader

    cfg = make_config(**{"trainer.accumulate_steps": accumulate, "optim.name": "sgd", "optim.momentum": 0.0})
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 5, generator=generator), torch.randint(0, 3, (n,), generator=generator)
    loader = PreloadedLoader(x, y, batch_size)  # no shuffling: both runs see the same order
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    return Trainer(cfg, model, loader, loader, {"classes": ["a", "b", "c"]}, tmp_path, "cpu")


def test_accumulated_small_batches_step_like_one_big_batch(make_config, tmp_path):
    big = linear_trainer(make_config, tmp_path / "big", batch_size=8, accumulate=1)
    small = linear_trainer(make_config, tmp_path / "small", batch_size=4, accumulate=2)
    big.train_one_epoch(0)
    small.train_one_epoch(0)
    assert big.step == small.step == 3  # 24 samples: 3 optimizer steps either way
    for a, b in zip(big.model.parameters(), small.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_a_short_last_group_is_averaged_over_its_own_batches(make_config, tmp_path):
    # 5 batches of 4 with accumulate_steps=2: groups of 2, 2 and 1 batches -> 3 steps; the last
    # group's gradient is its one batch's mean, like a plain run over those 4 samples.
    grouped = linear_trainer(make_config, tmp_path / "grouped", batch_size=4, accumulate=2, n=20)
    plain = linear_trainer(make_config, tmp_path / "plain", batch_size=8, accumulate=1, n=20)
    grouped.train_one_epoch(0)
    plain.train_one_epoch(0)  # batches of 8, 8 and 4
    assert grouped.step == plain.step == 3
    for a, b in zip(grouped.model.parameters(), plain.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_compiled_model_saves_and_loads_bare_names(make_config, tmp_path, monkeypatch):
    # The "eager" backend wraps the model exactly as torch.compile does, without a slow C++ build.
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: real_compile(model, backend="eager"))
    cfg = make_config(**{"trainer.compile": True})
    train_loader, val_loader, info = build_dataloaders(cfg)
    trainer = Trainer(cfg, build_model(cfg, info), train_loader, val_loader, info, tmp_path, "cpu")
    assert hasattr(trainer.model, "_orig_mod")  # compiled
    trainer.fit()
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert not any(key.startswith("_orig_mod.") for key in state["model"])
    fresh = build_model(cfg, info)
    fresh.load_state_dict(state["model"])  # a plain, uncompiled model takes them as they are
{% if cookiecutter.gpu != "none" %}


def test_matmul_precision_is_applied(make_config, tmp_path):
    before = torch.get_float32_matmul_precision()
    try:
        cfg = make_config(**{"trainer.matmul_precision": "medium"})
        train_loader, val_loader, info = build_dataloaders(cfg)
        Trainer(cfg, build_model(cfg, info), train_loader, val_loader, info, tmp_path, "cpu")
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(before)


def test_adamw_is_fused_only_on_cuda(make_config):
    cfg = make_config()
    cpu_model = torch.nn.Linear(3, 2)
    assert not trainer_module.build_optimizer(cfg, cpu_model).defaults["fused"]
    if torch.cuda.is_available():
        assert trainer_module.build_optimizer(cfg, cpu_model.cuda()).defaults["fused"]
{% endif %}
