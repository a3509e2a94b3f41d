"""`data.balanced_sampler`: draw the train samples of each epoch so that every class is equally likely.

Rare classes are seen as often as common ones (their samples repeat, the common ones' are left out more),
which helps a model that would otherwise learn to predict the common classes. The draws are seeded by the
loader's generator, which the trainer reseeds every epoch: a resumed run draws the same samples.
"""

import logging

import torch
from torch.utils.data import Sampler

from ..errors import ConfigError

log = logging.getLogger(__name__)
__all__ = ["BalancedSampler", "balanced_weights", "draw_balanced"]


def balanced_weights(cfg, train_set, num_classes: int) -> torch.Tensor | None:
    """Per train sample, 1 / its class's count (so that every class weighs the same); None when off."""
    if not cfg.data.balanced_sampler:
        return None
    if not num_classes:
        raise ConfigError("data.balanced_sampler=true draws every class equally often; these targets have no classes")
    labels = getattr(train_set, "labels", None)  # a dataset of your own may not say
    if not isinstance(labels, torch.Tensor):
        raise ConfigError(
            f"data.balanced_sampler=true needs the train dataset's class ids as a `labels` tensor; "
            f"{type(train_set).__name__} has none: add one, or set data.balanced_sampler=false"
        )
    counts = torch.bincount(labels, minlength=num_classes)
    log.info("data.balanced_sampler: train class counts %s; every class is drawn as often", counts.tolist())
    return 1.0 / counts[labels].double()


def draw_balanced(weights: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` sample indices drawn with replacement, index i with probability weights[i] / sum (inverse CDF:
    any number of samples, unlike torch.multinomial's 2**24 categories)."""
    cdf = weights.cumsum(0)
    draws = torch.rand(count, generator=generator, dtype=torch.float64) * cdf[-1]
    return torch.searchsorted(cdf, draws, right=True).clamp_max_(len(weights) - 1)


class BalancedSampler(Sampler):
    """As many draws per epoch as there are samples, each index drawn with its weight."""

    def __init__(self, weights: torch.Tensor, generator: torch.Generator):
        self.weights = weights
        self.generator = generator

    def __len__(self) -> int:
        return len(self.weights)

    def __iter__(self):
        return iter(draw_balanced(self.weights, len(self), self.generator).tolist())
