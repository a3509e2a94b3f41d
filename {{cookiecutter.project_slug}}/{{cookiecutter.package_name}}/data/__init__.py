"""`build_dataloaders(cfg)`: datasets for `data.root`, wrapped in fast, reproducible loaders."""

import logging
{% if cookiecutter.dataset_type != "torchvision" %}
import os
import shutil
{% endif %}
from pathlib import Path

import torch
from torch.utils.data import DataLoader

{% if cookiecutter.dataset_type != "torchvision" %}
from ..config import SAMPLE_DATA_ROOT
{% endif %}
from ..utils.device import resolve_device
from .common import DataError
from .dataset import EXPECTED_LAYOUT, build_datasets
{% if cookiecutter.dataset_type != "tabular_csv" %}
from .images import BatchTransform, collate_skipping_none, preload_images
from .preload import PreloadedLoader
{% else %}
from .preload import PreloadedLoader, check_fits
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


def take_skipped(loader) -> int:
    """Corrupt samples the loader skipped since the last call (`data.skip_corrupt`)."""
    take = getattr(loader.dataset, "take_skipped", None)
    return take() if take else 0


def build_dataloaders(cfg, data_info: dict | None = None):
    """Return (train_loader, val_loader, data_info).

    Pass a checkpoint's `data_info` to reuse its classes and normalisation (evaluation).
    The train loader's generator is reseeded every epoch (see `Trainer`) so shuffling and
    worker seeds depend only on (seed, epoch): resuming replays the exact same batches.
    For the same reason workers are not persistent: each epoch's workers start from that seed.
    """
    ensure_data_root(cfg)
    train_set, val_set, data_info = build_datasets(cfg, data_info)
    # A last batch of a single sample would break BatchNorm: drop it only then.
    drop_last = len(train_set) % cfg.data.batch_size == 1 and len(train_set) > 1
    generator = torch.Generator().manual_seed(cfg.seed)
    if cfg.data.preload != "false":
        device = resolve_device(cfg.trainer.device) if cfg.data.preload == "device" else torch.device("cpu")
        loaders = []
        for split, dataset, train in (("train", train_set, True), ("val", val_set, False)):
{% if cookiecutter.dataset_type != "tabular_csv" %}
            inputs, targets = preload_images(dataset, cfg, device, split)
            transform = BatchTransform(cfg, data_info["mean"], data_info["std"], train)
{% else %}
            # Tables are parsed into tensors already; preloading batches them by indexing (on the GPU too).
            check_fits(dataset.features.nbytes, device, cfg, f"{len(dataset)} {split} rows")
            inputs, targets, transform = dataset.features.to(device), dataset.labels.to(device), None
{% endif %}
            batching = dict(shuffle=True, drop_last=drop_last, generator=generator) if train else {}
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
    train_loader = DataLoader(train_set, shuffle=True, drop_last=drop_last, generator=generator, **common)
    val_loader = DataLoader(val_set, shuffle=False, **common)
    return train_loader, val_loader, data_info
