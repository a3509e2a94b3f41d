"""The recipe keys of classes: data.balanced_sampler, trainer.class_weights, and mixed targets' train accuracy."""

import csv
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import TensorDataset

import train
from {{ cookiecutter.package_name }} import task
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint, load_model_weights
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.data.preload import PreloadedLoader
from {{ cookiecutter.package_name }}.data.sampling import BalancedSampler, balanced_weights, draw_balanced
from {{ cookiecutter.package_name }}.errors import ConfigError
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.task import RunningSums

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


# ---- class weights, through train.py -----------------------------------------------------------------
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
