"""DDP with data.balanced_sampler: every rank draws the same balanced order and takes its shard of it
(test_distributed.py: what every task shares)."""

import math

import pytest
import torch
from test_distributed import fake_rank, shard_indices

from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.data.preload import PreloadedLoader
from {{ cookiecutter.package_name }}.data.sampling import draw_balanced
from {{ cookiecutter.package_name }}.distributed import shard_loaders


@pytest.mark.parametrize("preload", ["false", "cpu"])
def test_balanced_draws_are_the_same_on_every_rank_and_sharded(make_config, monkeypatch, preload):
    cfg = make_config(**{"data.balanced_sampler": True, "data.preload": preload})
    train_loader, val_loader, _ = build_dataloaders(cfg)
    preloaded = isinstance(train_loader, PreloadedLoader)
    weights = train_loader.weights if preloaded else train_loader.sampler.sampler.weights
    world, shards = 3, []
    for rank in range(world):
        fake_rank(monkeypatch, rank, world)
        train_shard, _ = shard_loaders(train_loader, val_loader, cfg)
        train_shard.generator.manual_seed(0)  # what the trainer does on every rank at each epoch's start
        shards.append(shard_indices(train_shard))
    n = len(train_loader.dataset)
    per_rank = math.ceil(n / world)
    assert [len(shard) for shard in shards] == [per_rank] * world  # equal steps on every rank
    # One draw, the same on every rank (preloaded: n draws, padded by repeating; lazy: the padded count).
    generator = torch.Generator().manual_seed(0)
    if not preloaded:  # the ResumableSampler draws the epoch's seed first
        torch.randint(2**62, (), generator=generator)
    drawn = draw_balanced(weights, n if preloaded else per_rank * world, generator)
    expected = drawn.repeat(2)[: per_rank * world].tolist()
    assert [shards[i % world][i // world] for i in range(per_rank * world)] == expected
