"""Data: `build_dataloaders(cfg)` -> (train_loader, val_loader, data_info) for the dataset under data.root."""

import logging

from ..errors import DataError
from .dataset import build_datasets, build_test_set, ensure_data_root
from .loaders import build_dataloaders
from .preload import PreloadedLoader

__all__ = [
    "DataError",
    "build_dataloaders",
    "build_datasets",
    "build_test_set",
    "ensure_data_root",
    "eval_datasets",
    "take_skipped",
]
log = logging.getLogger(__name__)


def take_skipped(loader) -> int:
    """Corrupt samples the loader skipped since the last call (`data.skip_corrupt`)."""
    take = getattr(loader.dataset, "take_skipped", None)
    return take() if take else 0


def eval_datasets(cfg, data_info: dict, val_loader) -> dict:
    """{"val": ..., "test": ...} (test only where the data has one), transformed as validation is, for the
    end-of-training reports. Val is `val_loader`'s dataset (for a preloaded loader: the one it was read from)."""
    val = val_loader.source if isinstance(val_loader, PreloadedLoader) else val_loader.dataset
    datasets = {"val": val}
    test = build_test_set(cfg, data_info)
    return datasets if test is None else {**datasets, "test": test}
