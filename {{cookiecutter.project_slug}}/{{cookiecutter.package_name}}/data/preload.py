"""`data.preload`: decode the data once, hold it in memory, batch by indexing: faster epochs when it fits.

Samples are kept as decoded and compact; the per-batch transform then runs on whole batches, on their device.
"""

import logging

import torch
from torch.utils.data import TensorDataset

from ..device import free_memory
from ..errors import DataError
from .resumable import position_seed, seed_position
from .sampling import draw_balanced

log = logging.getLogger(__name__)


def gib(nbytes: float) -> str:
    """A readable size: GiB from 128 MiB up, MiB below."""
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**27 else f"{nbytes / 2**20:.1f} MiB"


def check_fits(nbytes: int, device: torch.device, cfg, what: str) -> None:
    """Refuse a preload that would take more than `data.preload_memory_fraction` of the free memory."""
    free = free_memory(device)
    where = "RAM" if device.type == "cpu" else f"{device.type.upper()} memory"
    if free is None:
        log.warning("cannot tell how much %s is free; preloading %s (%s) anyway", where, what, gib(nbytes))
        return
    if nbytes > free * cfg.data.preload_memory_fraction:
        smaller = "a smaller data.image_size, "  # images
        smaller = ""  # tables
        raise DataError(
            f"data.preload={cfg.data.preload} needs {gib(nbytes)} for {what}, more than "
            f"data.preload_memory_fraction={cfg.data.preload_memory_fraction} of the {gib(free)} of free {where}. "
            f"Use data.preload=false (read lazily), {smaller}or raise data.preload_memory_fraction."
        )


class PreloadedLoader:
    """Batches by indexing tensors in memory; `transform(inputs, targets)` runs on the whole batch. A drop-in for
    the DataLoader in the loop, with a `.generator` the trainer reseeds every epoch, as it does the DataLoader's.
    `take(tensor, index)` takes a batch out of the store (default: indexing), e.g. into page-locked memory and
    onto the device the transform runs on."""

    def __init__(
        self, inputs, targets, batch_size, shuffle=False, generator=None, transform=None, source=None, weights=None
    ):
        self.dataset = TensorDataset(inputs, targets)
        self.source = source  # the dataset this was decoded from (evaluation reports read it lazily)
        self.inputs = inputs
        self.targets = targets
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.transform = transform
        self.weights = weights  # data.balanced_sampler: per-sample weights of the draws (train)
        self.take = None
        self.skip = 0

    def num_samples(self) -> int:
        return len(self.targets)

    def order(self) -> torch.Tensor:
        """This epoch's sample indices: shuffled by the generator for train (or drawn, data.balanced_sampler),
        in order for val."""
        n = len(self.targets)
        if self.weights is not None:
            return draw_balanced(self.weights, n, self.generator)
        return torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)

    def batch_seed(self, base: int, number: int) -> int:
        """The seed of batch `number` of the epoch whose draw is `base`."""
        return position_seed(base, number)

    def __len__(self) -> int:
        n = self.num_samples()
        # Train: a last batch of a single sample would break BatchNorm, so drop it, and only then.
        drop_last = self.shuffle and n % self.batch_size == 1 and n > 1
        return n // self.batch_size if drop_last else -(-n // self.batch_size)

    def __iter__(self):
        order = self.order().to(self.targets.device)
        base = int(torch.randint(2**62, (), generator=self.generator)) if self.shuffle else 0
        skip, self.skip = self.skip, 0  # resume_at: batches a resumed epoch has done already
        for number, start in enumerate(range(0, len(self) * self.batch_size, self.batch_size)):
            if number < skip:
                continue
            if self.shuffle:  # train: the transform's random draws made per batch, wherever the epoch resumes
                seed_position(self.batch_seed(base, number), every_device=True)
            index = order[start : start + self.batch_size]
            inputs = self.take(self.inputs, index) if self.take else self.inputs[index]
            targets = self.take(self.targets, index) if self.take else self.targets[index]
            yield self.transform(inputs, targets) if self.transform else (inputs, targets)
