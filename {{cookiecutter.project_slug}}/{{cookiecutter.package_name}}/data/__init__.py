"""`build_dataloaders(cfg)`: datasets for `data.root`, wrapped in fast, reproducible DataLoaders."""

import logging
import os
import shutil
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..config import SAMPLE_DATA_ROOT
from .dataset import EXPECTED_LAYOUT, DataError, build_datasets

__all__ = ["DataError", "build_dataloaders", "build_datasets", "ensure_data_root"]

log = logging.getLogger(__name__)


def ensure_data_root(cfg) -> None:
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


def build_dataloaders(cfg, data_info: dict | None = None):
    """Return (train_loader, val_loader, data_info).

    Pass a checkpoint's `data_info` to reuse its classes and normalisation (evaluation).
    The train loader's generator is reseeded every epoch (see `Trainer`) so shuffling and
    worker seeds depend only on (seed, epoch): resuming replays the exact same batches.
    For the same reason workers are not persistent: each epoch's workers start from that seed.
    """
    ensure_data_root(cfg)
    train_set, val_set, data_info = build_datasets(cfg, data_info)
{% if cookiecutter.gpu != "none" %}
    # Pinned host memory + non_blocking copies let the host->GPU transfer overlap compute.
    pin_memory = cfg.data.pin_memory and torch.cuda.is_available() and cfg.trainer.device != "cpu"
{% else %}
    pin_memory = False
{% endif %}
    common = dict(batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers, pin_memory=pin_memory)
    train_loader = DataLoader(
        train_set,
        shuffle=True,
        # A last batch of a single sample would break BatchNorm: drop it only then.
        drop_last=len(train_set) % cfg.data.batch_size == 1 and len(train_set) > 1,
        generator=torch.Generator().manual_seed(cfg.seed),
        **common,
    )
    val_loader = DataLoader(val_set, shuffle=False, **common)
    return train_loader, val_loader, data_info
