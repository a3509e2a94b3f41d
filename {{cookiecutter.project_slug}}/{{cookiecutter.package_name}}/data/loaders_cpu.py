"""`build_dataloaders(cfg)`: the datasets under data.root in fast, reproducible loaders.

Lazy loaders read samples in worker processes; `data.preload` decodes everything once into RAM
and batches by indexing. The train generator is reseeded every epoch (see engine.py), so
resuming replays the same batches; for the same reason workers are not persistent.
"""

import torch
from torch.utils.data import DataLoader, RandomSampler

from .dataset import build_datasets, ensure_data_root, preload_split
from .preload import PreloadedLoader
from .resumable import ResumableSampler
from .sampling import BalancedSampler, balanced_weights


def build_dataloaders(cfg, data_info: dict | None = None, device=None):  # device: unused on the CPU
    """(train_loader, val_loader, data_info); a checkpoint's `data_info` fixes the labels and normalisation."""
    ensure_data_root(cfg)
    train_set, val_set, data_info = build_datasets(cfg, data_info)
    generator = torch.Generator().manual_seed(cfg.seed)
    weights = balanced_weights(cfg, train_set, len(data_info.get("classes", ())))  # data.balanced_sampler
    if cfg.data.preload != "false":
        loaders = []
        for split, dataset in (("train", train_set), ("val", val_set)):
            inputs, targets, transform = preload_split(dataset, cfg, torch.device("cpu"), split)
            train = split == "train"
            draws = weights if train else None
            loaders.append(
                PreloadedLoader(inputs, targets, cfg.data.batch_size, train, generator, transform, dataset, draws)
            )
        return *loaders, data_info
    common = dict(batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers)
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
