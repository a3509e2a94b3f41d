"""Recipe keys: trainer.ema_decay (and with it, resume and inference), model.freeze_backbone_epochs, and
whether this task takes data.balanced_sampler."""

import csv
import json

import pytest
import torch
import torch.nn as nn

import evaluate
import train
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint, load_model_weights
from {{ cookiecutter.package_name }}.config import ConfigError  # regression
from {{ cookiecutter.package_name }}.config import ConfigError  # multilabel
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.ema import build_ema
from {{ cookiecutter.package_name }}.engine import Trainer, build_optimizer, build_scheduler
from {{ cookiecutter.package_name }}.engine import evaluate as evaluate_loop
from {{ cookiecutter.package_name }}.errors import run_main
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.task import build_criterion


def fit(cfg, run_dir) -> Trainer:
    train_loader, val_loader, info = build_dataloaders(cfg)
    model = build_model(cfg, info)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    criterion = build_criterion(cfg, info)
    trainer = Trainer(cfg, model, criterion, optimizer, scheduler, train_loader, val_loader, info, run_dir, "cpu")
    trainer.fit()
    return trainer


# ---- EMA ----------------------------------------------------------------------------------------------
def test_ema_is_off_by_default_and_follows_every_optimizer_step(make_config, tmp_path):
    assert build_ema(make_config(), nn.Linear(2, 2)) is None
    cfg = make_config(**{"trainer.ema_decay": 0.9, "trainer.epochs": 2})  # not 0.5: 1 - decay would pass too
    trainer = fit(cfg, tmp_path / "run")
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["ema_updates"] == trainer.step > 2  # one update per optimizer step
    raw, averaged = state["model"], state["model_ema"]
    assert raw.keys() == averaged.keys()
    floats = [key for key, value in raw.items() if value.is_floating_point()]
    assert any(not torch.equal(raw[key], averaged[key]) for key in floats)  # a real average, not a copy
    # The average moves toward the weights: ema = 0.9 ema + 0.1 w after each step.
    model = trainer.eval_model
    before = {k: v.clone() for k, v in trainer.ema.module.state_dict().items()}
    trainer.ema.update_parameters(model)
    for key in floats:
        expected = 0.9 * before[key] + 0.1 * model.state_dict()[key]
        torch.testing.assert_close(trainer.ema.module.state_dict()[key], expected, msg=key)


def test_validation_best_pt_and_inference_use_the_ema_weights(tmp_path, cli_overrides, capsys, make_config):
    assert train.main(cli_overrides(run_name="ema", **{"trainer.ema_decay": 0.6, "trainer.epochs": 2})) == 0
    run_dir = tmp_path / "runs" / "ema"
    with open(run_dir / "metrics.csv", newline="") as file:
        last = list(csv.DictReader(file))[-1]
    rows = {int(row["epoch"]): row for row in csv.DictReader((run_dir / "metrics.csv").open(newline=""))}
    best_epoch = load_checkpoint(run_dir / "checkpoints" / "best.pt")["epoch"]
    report = json.loads((run_dir / "eval" / "val" / "report.json").read_text(encoding="utf-8"))
    assert report["loss"] == pytest.approx(float(rows[best_epoch]["val_loss"]), abs=1e-6)  # the end-of-run report
    capsys.readouterr()
    assert evaluate.main([str(run_dir / "checkpoints" / "last.pt")]) == 0  # evaluate.py loads the averaged weights
    result = json.loads(capsys.readouterr().out)
    assert result["loss"] == pytest.approx(float(last["val_loss"]), abs=1e-6)
    # ... which are not the trained ones: those give another validation loss.
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    cfg = make_config()
    _, val_loader, info = build_dataloaders(cfg, state["data_info"])
    model = build_model(cfg, info)
    load_model_weights(model, state, averaged=False)
    raw = evaluate_loop(model, build_criterion(cfg, info), val_loader, torch.device("cpu"), cfg)
    assert raw["loss"] != pytest.approx(result["loss"], abs=1e-6)
    # model.weights=<our checkpoint> starts from the averaged weights too.
    fine_tune = build_model(make_config(**{"model.weights": str(run_dir / "checkpoints" / "last.pt")}), info)
    for key, value in state["model_ema"].items():
        assert torch.equal(fine_tune.state_dict()[key], value), key


def test_batchnorm_learns_again_once_the_backbone_thaws(make_config, tmp_path):
    cfg = make_config(**{"trainer.epochs": 2, "model.freeze_backbone_epochs": 1})
    train_loader, val_loader, info = build_dataloaders(cfg)
    model = build_model(cfg, info)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms, "the default model has BatchNorm layers"
    seen = [[m.running_mean.clone() for m in norms]]
    optimizer = build_optimizer(cfg, model)
    args = (train_loader, val_loader, info, tmp_path / "run", torch.device("cpu"))
    trainer = Trainer(cfg, model, build_criterion(cfg, info), optimizer, build_scheduler(cfg, optimizer), *args)
    trainer.epoch_callbacks.append(lambda row, stats: seen.append([m.running_mean.clone() for m in norms]))
    trainer.fit()
    assert all(torch.equal(a, b) for a, b in zip(seen[0], seen[1], strict=True))  # epoch 1: frozen statistics
    assert all(not torch.equal(a, b) for a, b in zip(seen[1], seen[2], strict=True))  # epoch 2: they move again


# ---- data.balanced_sampler: only where the targets are classes ----------------------------------------------
def test_the_balanced_sampler_is_for_classes(make_config, cli_overrides, capsys):
    code = run_main(train.main, cli_overrides(**{"data.balanced_sampler": True}))
    err = capsys.readouterr().err
    assert code == 0 and "every class is drawn as often" in err  # classification
    assert code == 2 and "Traceback" not in err  # regression
    assert err.strip().splitlines()[-1].startswith("error: data.balanced_sampler=true")  # regression
    with pytest.raises(ConfigError, match=r"data\.balanced_sampler=true .*classes"):  # regression
        build_dataloaders(make_config(**{"data.balanced_sampler": True}))  # regression
    assert code == 2 and "Traceback" not in err  # multilabel
    assert err.strip().splitlines()[-1].startswith("error: data.balanced_sampler=true")  # multilabel
    with pytest.raises(ConfigError, match=r"data\.balanced_sampler=true draws every class"):  # multilabel
        build_dataloaders(make_config(**{"data.balanced_sampler": True}))  # multilabel
