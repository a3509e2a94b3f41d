"""`build_dataloaders(cfg)`: the datasets under data.root in fast, reproducible loaders.

Lazy loaders read samples in worker processes into pinned memory (fast, asynchronous copies to
the GPU); `data.preload` decodes everything once into RAM or GPU memory and batches by indexing,
a batch from RAM crossing to the GPU pinned and as stored (compact) to be transformed there.
The train generator is reseeded every epoch (see engine.py), so resuming replays the same batches;
for the same reason workers are not persistent.
"""

from functools import partial

import torch
from torch.utils.data import DataLoader, RandomSampler

from ..device import resolve_device
from .dataset import build_datasets, ensure_data_root, preload_split
from .preload import PreloadedLoader
from .resumable import ResumableSampler
from .sampling import BalancedSampler, balanced_weights


def build_dataloaders(cfg, data_info: dict | None = None, device=None):
    """(train_loader, val_loader, data_info); a checkpoint's `data_info` fixes the labels and normalisation.

    data.preload=device holds the data on `device` (default: trainer.device's).
    """
    ensure_data_root(cfg)
    train_set, val_set, data_info = build_datasets(cfg, data_info)
    device = torch.device(device) if device is not None else resolve_device(cfg.trainer.device)
    generator = torch.Generator().manual_seed(cfg.seed)
    weights = balanced_weights(cfg, train_set, len(data_info.get("classes", ())))  # data.balanced_sampler
    # Page-locked host memory lets non_blocking host->GPU copies overlap compute.
    pin_memory = cfg.data.pin_memory and device.type == "cuda"
    if cfg.data.preload != "false":
        target = device if cfg.data.preload == "device" else torch.device("cpu")
        take = partial(take_pinned, device=device) if pin_memory and target.type == "cpu" else None
        loaders = []
        for split, dataset in (("train", train_set), ("val", val_set)):
            inputs, targets, transform = preload_split(dataset, cfg, target, split)
            train = split == "train"
            draws = weights if train else None
            batches = PreloadedLoader(inputs, targets, cfg.data.batch_size, train, generator, transform, dataset, draws)
            batches.take = take  # pinned and copied as stored: the transform runs on the device
            loaders.append(batches)
        return *loaders, data_info
    common = dict(batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers, pin_memory=pin_memory)
    # A last batch of a single sample would break BatchNorm: drop it, and only then.
    drop_last = len(train_set) % cfg.data.batch_size == 1 and len(train_set) > 1
    order = RandomSampler(train_set, generator=generator) if weights is None else BalancedSampler(weights, generator)
    sampler = ResumableSampler(order, generator, cfg.data.batch_size)  # seeded per sample; resumes mid-epoch
    train_loader = DataLoader(
        train_set,
        sampler=sampler,
        drop_last=drop_last,
        generator=generator,
        collate_fn=getattr(train_set, "collate_fn", None),  # None: the default collate
        **common,
    )
    val_loader = DataLoader(val_set, shuffle=False, collate_fn=getattr(val_set, "collate_fn", None), **common)
    return train_loader, val_loader, data_info


def take_pinned(store: torch.Tensor, index: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`store[index]` gathered into page-locked memory, then copied to `device` without blocking (a copy from
    pageable memory would be synchronous). The buffer comes from PyTorch's caching host allocator, which reuses it
    only once the copy from it is done."""
    batch = torch.empty((len(index), *store.shape[1:]), dtype=store.dtype, pin_memory=True)
    return torch.index_select(store, 0, index, out=batch).to(device, non_blocking=True)
