"""`data.preload`: decode the data once, hold it in RAM or GPU memory, batch by indexing.

The seed notes: read samples lazily to save memory, but if RAM or GPU memory allows,
load everything up front: training is faster. Preloaded images are kept as uint8
(4x smaller than float) at `data.image_size`; augmentation and normalisation then run
on the whole batch, on the batch's device, instead of per sample in `__getitem__`.
"""

import logging
import os

import torch
from torch.utils.data import TensorDataset

from .common import DataError

log = logging.getLogger(__name__)


def free_memory(device: torch.device) -> int | None:
    """Bytes that can still be allocated on `device` (None when the OS does not say)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as file:  # Linux: MemAvailable counts reclaimable caches too
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**27 else f"{nbytes / 2**20:.1f} MiB"


def check_fits(nbytes: int, device: torch.device, cfg, what: str) -> None:
    """Refuse a preload that would take more than `data.preload_memory_fraction` of the free memory."""
    free = free_memory(device)
    where = "GPU memory" if device.type == "cuda" else "RAM"
    if free is None:
        log.warning("cannot tell how much %s is free; preloading %s (%s) anyway", where, what, gib(nbytes))
        return
    limit = free * cfg.data.preload_memory_fraction
    if nbytes > limit:
        raise DataError(
            f"data.preload={cfg.data.preload} needs {gib(nbytes)} for {what}, more than "
            f"data.preload_memory_fraction={cfg.data.preload_memory_fraction} of the {gib(free)} of free {where}. "
            "Use data.preload=false (read lazily), a smaller data.image_size, "
            "or raise data.preload_memory_fraction."
        )


class PreloadedLoader:
    """Batches by indexing tensors held in memory: no per-sample `__getitem__`, no collate.

    Drop-in for the DataLoader in the loop: `len()`, iteration, `.dataset` and a
    `.generator` the trainer reseeds every epoch (so resume replays the same order).
    `transform(batch)` runs on the whole batch on its device (augmentation, normalisation).
    """

    def __init__(
        self, inputs, targets, batch_size, shuffle=False, drop_last=False, generator=None, transform=None, shard=(0, 1)
    ):
        self.dataset = TensorDataset(inputs, targets)
        self.inputs, self.targets = inputs, targets
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator
        self.transform = transform
        # (rank, world_size): each rank takes every world_size-th sample of the order.
        self.rank, self.world_size = shard

    def num_samples(self) -> int:
        """Samples this rank sees per epoch: train shards are padded to equal size (every rank
        must take the same number of steps), validation shards are not (no sample counted twice)."""
        n = len(self.targets)
        if self.shuffle:
            return -(-n // self.world_size)
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        n = self.num_samples()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.targets)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.world_size > 1:
            if self.shuffle:  # pad by repeating the order, as DistributedSampler does (even when n < world_size)
                total = self.num_samples() * self.world_size
                order = order.repeat(-(-total // n))[:total]
            order = order[self.rank :: self.world_size]
        order = order.to(self.targets.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            inputs = self.inputs[index]
            yield (self.transform(inputs) if self.transform else inputs), self.targets[index]
