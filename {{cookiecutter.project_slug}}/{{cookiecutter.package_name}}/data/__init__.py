"""Data: `build_dataloaders(cfg)` -> (train_loader, val_loader, data_info) for the dataset under data.root."""

from ..errors import DataError
from .dataset import build_datasets, ensure_data_root
from .loaders import build_dataloaders

__all__ = ["DataError", "build_dataloaders", "build_datasets", "ensure_data_root", "take_skipped"]


def take_skipped(loader) -> int:
    """Corrupt samples the loader skipped since the last call (`data.skip_corrupt`)."""
    take = getattr(loader.dataset, "take_skipped", None)
    return take() if take else 0
