"""The recipe keys every data type has: trainer.ema_decay and data.balanced_sampler (and with them, resume)."""

import csv
import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

import evaluate
import train
from {{ cookiecutter.package_name }} import task
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint, load_model_weights
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.data.preload import PreloadedLoader
from {{ cookiecutter.package_name }}.data.sampling import BalancedSampler, balanced_weights, draw_balanced
from {{ cookiecutter.package_name }}.ema import build_ema
from {{ cookiecutter.package_name }}.engine import Trainer, build_optimizer, build_scheduler
from {{ cookiecutter.package_name }}.engine import evaluate as evaluate_loop
from {{ cookiecutter.package_name }}.errors import ConfigError
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.task import RunningSums


def fit(cfg, run_dir) -> Trainer:
    train_loader, val_loader, info = build_dataloaders(cfg)
    model = build_model(cfg, info)
    optimizer = build_optimizer(cfg, model)
    trainer = Trainer(
        cfg,
        model,
        nn.CrossEntropyLoss(),
        optimizer,
        build_scheduler(cfg, optimizer),
        train_loader,
        val_loader,
        info,
        run_dir,
        "cpu",
    )
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
    raw = evaluate_loop(model, nn.CrossEntropyLoss(), val_loader, torch.device("cpu"), cfg)
    assert raw["loss"] != pytest.approx(result["loss"], abs=1e-6)
    # model.weights=<our checkpoint> starts from the averaged weights too.
    fine_tune = build_model(make_config(**{"model.weights": str(run_dir / "checkpoints" / "last.pt")}), info)
    for key, value in state["model_ema"].items():
        assert torch.equal(fine_tune.state_dict()[key], value), key


# ---- balanced sampler ---------------------------------------------------------------------------------
LABELS = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)  # 90 / 9 / 1


def test_balanced_draws_make_every_class_equally_likely(make_config):
    weights = balanced_weights(make_config(**{"data.balanced_sampler": True}), SimpleNamespace(labels=LABELS), 3)
    drawn = draw_balanced(weights, 30000, torch.Generator().manual_seed(0))
    shares = torch.bincount(LABELS[drawn], minlength=3) / 30000
    assert shares.tolist() == pytest.approx([1 / 3] * 3, abs=0.02)
    assert balanced_weights(make_config(), None, 3) is None  # off by default


def test_balanced_sampler_is_seeded(make_config):
    weights = 1.0 / torch.bincount(LABELS)[LABELS].double()
    generator = torch.Generator()
    sampler = BalancedSampler(weights, generator)
    generator.manual_seed(7)
    full = list(sampler)
    generator.manual_seed(7)
    assert list(sampler) == full and len(sampler) == len(full) == 100  # the same seed: the same epoch
    generator.manual_seed(7)
    assert full == draw_balanced(weights, 100, generator).tolist()


def test_the_loaders_draw_balanced_when_asked(make_config):
    for preload in ("false", "cpu"):
        cfg = make_config(**{"data.balanced_sampler": True, "data.preload": preload})
        train_loader, val_loader, _ = build_dataloaders(cfg)
        if isinstance(train_loader, PreloadedLoader):
            assert train_loader.weights is not None and val_loader.weights is None
        else:
            assert isinstance(train_loader.sampler.sampler, BalancedSampler)
        train_loader.generator.manual_seed(1)
        first = [targets for _, targets in train_loader]
        train_loader.generator.manual_seed(1)
        assert all(torch.equal(a, b) for a, b in zip(first, (t for _, t in train_loader), strict=True))
        assert sum(len(targets) for _, targets in val_loader) == len(val_loader.dataset)  # val: every sample once


def test_a_dataset_without_labels_gets_a_clear_error(make_config):
    cfg = make_config(**{"data.balanced_sampler": True})
    with pytest.raises(ConfigError, match="balanced_sampler.*`labels`.*TensorDataset"):
        balanced_weights(cfg, TensorDataset(torch.zeros(4, 2)), 2)


def test_train_accuracy_of_mixed_targets_counts_the_dominant_class():
    sums = RunningSums(torch.device("cpu"))
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    mixed = torch.tensor([[0.7, 0.3, 0.0], [0.6, 0.0, 0.4], [0.0, 0.45, 0.55]])  # dominant classes 0, 0, 2
    sums.add(torch.tensor(1.0), logits, mixed)
    assert sums.result("train")["accuracy"] == pytest.approx(2 / 3)


# ---- class weights and a frozen backbone, through train.py -----------------------------------------------
def test_balanced_class_weights_reach_the_training_loss(tmp_path, cli_overrides, monkeypatch, make_config):
    # The tiny data is balanced (balanced weights are all 1): lopsided weights stand in for the train counts'.
    def lopsided(cfg, data_info):
        return None if cfg.trainer.class_weights == "none" else torch.linspace(0.2, 3.0, len(data_info["class_counts"]))

    monkeypatch.setattr(task, "class_weights", lopsided)
    for name, weights in (("weighted", "balanced"), ("plain", "none")):
        assert train.main(cli_overrides(run_name=name, **{"trainer.class_weights": weights})) == 0
    runs = tmp_path / "runs"
    weighted, plain = (load_checkpoint(runs / name / "checkpoints" / "last.pt") for name in ("weighted", "plain"))
    assert any(not torch.equal(weighted["model"][k], plain["model"][k]) for k in plain["model"])  # it trained
    # The logged val loss is the weighted mean sum(w_y l) / sum(w_y), computed here by hand.
    cfg = make_config()
    _, val_loader, info = build_dataloaders(cfg, weighted["data_info"])
    model = build_model(cfg, info)
    load_model_weights(model, weighted)
    weight = lopsided(make_config(**{"trainer.class_weights": "balanced"}), info)
    with torch.no_grad():
        pairs = [(model.eval()(inputs), targets) for inputs, targets in val_loader]
    logits, targets = torch.cat([p for p, _ in pairs]), torch.cat([t for _, t in pairs])
    losses = -logits.double().log_softmax(1)[torch.arange(len(targets)), targets]
    expected = (weight.double()[targets] * losses).sum() / weight.double()[targets].sum()
    rows = list(csv.DictReader((runs / "weighted" / "metrics.csv").open(newline="")))
    assert float(rows[-1]["val_loss"]) == pytest.approx(expected.item(), rel=1e-4)


def test_batchnorm_learns_again_once_the_backbone_thaws(make_config, tmp_path):
    cfg = make_config(**{"trainer.epochs": 2, "model.freeze_backbone_epochs": 1})
    train_loader, val_loader, info = build_dataloaders(cfg)
    model = build_model(cfg, info)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms, "the default model has BatchNorm layers"
    seen = [[m.running_mean.clone() for m in norms]]
    optimizer = build_optimizer(cfg, model)
    args = (train_loader, val_loader, info, tmp_path / "run", torch.device("cpu"))
    trainer = Trainer(cfg, model, nn.CrossEntropyLoss(), optimizer, build_scheduler(cfg, optimizer), *args)
    trainer.epoch_callbacks.append(lambda row, stats: seen.append([m.running_mean.clone() for m in norms]))
    trainer.fit()
    assert all(torch.equal(a, b) for a, b in zip(seen[0], seen[1], strict=True))  # epoch 1: frozen statistics
    assert all(not torch.equal(a, b) for a, b in zip(seen[1], seen[2], strict=True))  # epoch 2: they move again
