"""Data: `build_dataloaders(cfg)` -> (train_loader, val_loader, data_info) for the dataset under data.root."""

from ..errors import DataError
from .dataset import build_datasets, build_test_set, ensure_data_root
from .loaders import build_dataloaders
from .preload import PreloadedLoader

__all__ = ["DataError", "build_dataloaders", "build_datasets", "ensure_data_root", "eval_datasets", "take_skipped"]


def take_skipped(loader) -> int:
    """Corrupt samples the loader skipped since the last call (`data.skip_corrupt`)."""
    take = getattr(loader.dataset, "take_skipped", None)
    return take() if take else 0


def eval_datasets(cfg, data_info: dict, val_loader=None) -> dict:
    """{"val": ..., "test": ...} (test only where the data has one), transformed as validation is, for reports.

    Val is `val_loader`'s dataset (the one it preloaded from), else built again from data.root."""
    if val_loader is None:
        val = build_datasets(cfg, data_info)[1]
    else:
        val = val_loader.source if isinstance(val_loader, PreloadedLoader) else val_loader.dataset
    datasets = {"val": val}
    test = build_test_set(cfg, data_info)
    return datasets if test is None else {**datasets, "test": test}
