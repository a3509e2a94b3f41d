"""`build_dataloaders(cfg)`: datasets for `data.root`, wrapped in fast, reproducible loaders."""

import logging
{% if cookiecutter.dataset_type != "torchvision" %}
import os
{% endif %}
{% if cookiecutter.gpu == "multi" %}
import random
{% endif %}
{% if cookiecutter.dataset_type != "torchvision" %}
import shutil
{% endif %}
{% if cookiecutter.gpu == "multi" %}
from functools import partial
{% endif %}
from pathlib import Path

import torch
{% if cookiecutter.gpu == "multi" %}
from torch.utils.data import DataLoader, DistributedSampler, Sampler
{% else %}
from torch.utils.data import DataLoader
{% endif %}

{% if cookiecutter.dataset_type != "torchvision" %}
from ..config import SAMPLE_DATA_ROOT
{% endif %}
{% if cookiecutter.gpu == "multi" %}
from ..utils.distributed import get_rank, get_world_size, rank_device
{% else %}
from ..utils.device import resolve_device
{% endif %}
from .common import DataError
from .dataset import EXPECTED_LAYOUT, build_datasets
{% if cookiecutter.dataset_type != "tabular_csv" %}
from .images import BatchTransform, collate_skipping_none, preload_images
from .preload import PreloadedLoader
{% else %}
from .preload import PreloadedLoader, check_fits, gib
{% endif %}

__all__ = ["DataError", "build_dataloaders", "build_datasets", "ensure_data_root", "take_skipped"]

log = logging.getLogger(__name__)


def ensure_data_root(cfg) -> None:
{% if cookiecutter.dataset_type == "torchvision" %}
    """A missing root is fine when torchvision may download into it; the dataset checks its files."""
    if cfg.data.download or Path(cfg.data.root).exists():
        return
    raise DataError(
        f"data.root={cfg.data.root!r} does not exist and data.download is false; expected:\n{EXPECTED_LAYOUT}"
    )
{% else %}
    """The shipped default root gets the sample data on first use; any other missing root is an error."""
    root = Path(cfg.data.root)
    if root.exists():
        return
    if cfg.data.root == SAMPLE_DATA_ROOT:
        from .sample import write_sample  # imported here so `python -m <package>.data.sample` runs cleanly

        log.info("data.root=%s does not exist: writing the sample dataset there first.", root)
        # Write beside it, then rename: a crash never leaves half a dataset at the root.
        tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        write_sample(tmp)
        try:
            tmp.rename(root)
        except OSError:  # another process wrote it first
            shutil.rmtree(tmp, ignore_errors=True)
            if not root.exists():
                raise
        return
    raise DataError(f"data.root={cfg.data.root!r} does not exist. Expected layout:\n{EXPECTED_LAYOUT}")
{% endif %}


{% if cookiecutter.gpu == "multi" %}
class ShardSampler(Sampler):
    """Every world_size-th index starting at rank, without padding: no sample is evaluated twice."""

    def __init__(self, n: int, rank: int, world_size: int):
        self.indices = range(rank, n, world_size)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def seed_worker_for_rank(worker_id: int, rank: int) -> None:
    """Worker seeds come from the loader's generator, the same on every rank; offset them per rank
    so that ranks draw different augmentations."""
    seed = (torch.initial_seed() + 1_000_003 * rank) % 2**32
    torch.manual_seed(seed)
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass


{% endif %}
def take_skipped(loader) -> int:
    """Corrupt samples the loader skipped since the last call (`data.skip_corrupt`)."""
    take = getattr(loader.dataset, "take_skipped", None)
    return take() if take else 0


def build_dataloaders(cfg, data_info: dict | None = None, device=None):
    """Return (train_loader, val_loader, data_info).

    Pass a checkpoint's `data_info` to reuse its classes and normalisation (evaluation), and
    the training device (default: from trainer.device) to hold data.preload=device data on it.
    The train loader's generator is reseeded every epoch (see `Trainer`) so shuffling and
    worker seeds depend only on (seed, epoch): resuming replays the exact same batches.
    For the same reason workers are not persistent: each epoch's workers start from that seed.
    """
    ensure_data_root(cfg)
    train_set, val_set, data_info = build_datasets(cfg, data_info)
{% if cookiecutter.gpu == "multi" %}
    rank, world_size = get_rank(), get_world_size()
    per_rank = -(-len(train_set) // world_size)  # train shards are padded to equal size
{% else %}
    per_rank = len(train_set)
{% endif %}
    # A last batch of a single sample would break BatchNorm: drop it only then.
    drop_last = per_rank % cfg.data.batch_size == 1 and per_rank > 1
    generator = torch.Generator().manual_seed(cfg.seed)
    if cfg.data.preload != "false":
        if cfg.data.preload != "device":
            device = torch.device("cpu")
        elif device is None:
{% if cookiecutter.gpu == "multi" %}
            device = rank_device(cfg.trainer.device)  # under torchrun: this rank's GPU, as setup_distributed
{% else %}
            device = resolve_device(cfg.trainer.device)
{% endif %}
        device = torch.device(device)
        loaders = []
        for split, dataset, train in (("train", train_set, True), ("val", val_set, False)):
{% if cookiecutter.dataset_type != "tabular_csv" %}
            inputs, targets = preload_images(dataset, cfg, device, split)
            transform = BatchTransform(cfg, data_info["mean"], data_info["std"], train)
{% else %}
            # Tables are parsed into tensors already; preloading batches them by indexing (on the GPU too).
            what = f"{len(dataset)} {split} rows"
            check_fits(dataset.features.nbytes, device, cfg, what)
            inputs, targets, transform = dataset.features.to(device), dataset.labels.to(device), None
            log.info("preloaded %s into %s memory: %s", what, device.type.upper(), gib(inputs.nbytes))
{% endif %}
            batching = dict(shuffle=True, drop_last=drop_last, generator=generator) if train else {}
{% if cookiecutter.gpu == "multi" %}
            batching["shard"] = (rank, world_size)
{% endif %}
            loaders.append(PreloadedLoader(inputs, targets, cfg.data.batch_size, transform=transform, **batching))
        return loaders[0], loaders[1], data_info
{% if cookiecutter.gpu != "none" %}
    # Pinned host memory + non_blocking copies let the host->GPU transfer overlap compute.
    pin_memory = cfg.data.pin_memory and torch.cuda.is_available() and cfg.trainer.device != "cpu"
{% else %}
    pin_memory = False
{% endif %}
    common = dict(batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers, pin_memory=pin_memory)
{% if cookiecutter.dataset_type != "tabular_csv" %}
    common["collate_fn"] = collate_skipping_none  # drops files skipped as corrupt (data.skip_corrupt)
{% endif %}
{% if cookiecutter.gpu == "multi" %}
    if world_size > 1:
        # Each rank trains on its shard (reshuffled per epoch by the trainer's set_epoch) and
        # validates on its share of val; the trainer sums the val metrics over ranks.
        train_sampler = DistributedSampler(train_set, world_size, rank, shuffle=True, seed=cfg.seed)
        common["worker_init_fn"] = partial(seed_worker_for_rank, rank=rank)
        train_loader = DataLoader(train_set, sampler=train_sampler, drop_last=drop_last, generator=generator, **common)
        val_loader = DataLoader(val_set, sampler=ShardSampler(len(val_set), rank, world_size), **common)
        return train_loader, val_loader, data_info
{% endif %}
    train_loader = DataLoader(train_set, shuffle=True, drop_last=drop_last, generator=generator, **common)
    val_loader = DataLoader(val_set, shuffle=False, **common)
    return train_loader, val_loader, data_info
