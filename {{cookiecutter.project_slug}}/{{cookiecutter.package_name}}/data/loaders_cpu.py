"""`build_dataloaders(cfg)`: the datasets under data.root in fast, reproducible loaders.

Lazy loaders read samples in worker processes; `data.preload` decodes everything once into RAM
and batches by indexing. The train generator is reseeded every epoch (see engine.py), so
resuming replays the same batches; for the same reason workers are not persistent.
"""

import torch
from torch.utils.data import DataLoader

from .dataset import build_datasets, ensure_data_root, preload_split
from .preload import PreloadedLoader


def build_dataloaders(cfg, data_info: dict | None = None, device=None):  # device: unused on the CPU
    """(train_loader, val_loader, data_info); a checkpoint's `data_info` fixes classes and normalisation."""
    ensure_data_root(cfg)
    train_set, val_set, data_info = build_datasets(cfg, data_info)
    generator = torch.Generator().manual_seed(cfg.seed)
    if cfg.data.preload != "false":
        loaders = []
        for split, dataset in (("train", train_set), ("val", val_set)):
            inputs, targets, transform = preload_split(dataset, cfg, torch.device("cpu"), split)
            loaders.append(
                PreloadedLoader(inputs, targets, cfg.data.batch_size, split == "train", generator, transform, dataset)
            )
        return *loaders, data_info
    collate_fn = getattr(train_set, "collate_fn", None)  # None: the default collate
    common = dict(batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers, collate_fn=collate_fn)
    # A last batch of a single sample would break BatchNorm: drop it, and only then.
    drop_last = len(train_set) % cfg.data.batch_size == 1 and len(train_set) > 1
    train_loader = DataLoader(train_set, shuffle=True, drop_last=drop_last, generator=generator, **common)
    return train_loader, DataLoader(val_set, shuffle=False, **common), data_info
