"""Train loaders that can resume in the middle of an epoch, exactly.

Every random draw of an epoch is a function of where it happens, not of what ran before: each sample
is loaded under a seed made of the epoch's draw and its position in the epoch's order (`SeededIndex`,
whichever worker loads it), and each preloaded batch under one made of its number. A run resumed at
batch k (`resume_at`) skips the first k batches at the sampler, without loading them, and continues
with exactly the samples and random draws the uninterrupted run had.
"""

import random

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["ResumableSampler", "SeededIndex", "position_seed", "resume_at", "seed_position"]


def position_seed(base: int, position: int) -> int:
    """A seed for one position of an epoch (`base`: the epoch's draw from the loader generator)."""
    return hash((base, position)) % 2**63  # ints hash to themselves: the same in every process


def seed_position(seed: int, every_device: bool = False) -> None:
    """Seed each generator a transform may draw from for one sample or batch: torch's (the CPU one, or with
    `every_device` each accelerator's too: torch.manual_seed costs 100x), Python's `random` and NumPy's global one."""
    if every_device:
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


class SeededIndex(int):
    """A sample index that carries the seed its sample is loaded (with its random transforms) with."""

    seed: int = 0

    def __new__(cls, index: int, seed: int):
        value = super().__new__(cls, index)
        value.seed = seed
        return value

    def __reduce__(self):  # to worker processes, with the seed
        return SeededIndex, (int(self), self.seed)


class ResumableSampler(Sampler):
    """`sampler`'s indices as SeededIndex, leaving out the first `skip` batches of the next epoch (then 0).
    Its length stays the whole epoch's, so the loop still knows where the epoch ends."""

    def __init__(self, sampler, generator: torch.Generator, batch_size: int):
        self.sampler = sampler
        self.generator = generator
        self.batch_size = batch_size
        self.skip = 0

    def __len__(self) -> int:
        return len(self.sampler)

    def epoch_base(self) -> int:
        """The epoch's draw from the generator, which every sample's seed is made of."""
        return int(torch.randint(2**62, (), generator=self.generator))

    def __iter__(self):
        base = self.epoch_base()  # before the sampler's own draws
        skip, self.skip = self.skip * self.batch_size, 0
        for position, index in enumerate(self.sampler):
            if position >= skip:
                yield SeededIndex(index, position_seed(base, position))


def resume_at(loader, batches: int) -> None:
    """The next epoch of the train `loader` starts at batch `batches` (0: at its start)."""
    loader = getattr(loader, "loader", loader)  # inside a Prefetcher
    sampler = getattr(loader, "sampler", None)
    (sampler if isinstance(sampler, ResumableSampler) else loader).skip = batches
