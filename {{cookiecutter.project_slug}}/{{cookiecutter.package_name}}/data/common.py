"""What the dataset types share: the sample root, the hold-out split, label order."""

import logging
import os
import shutil
from pathlib import Path

import torch

from ..errors import DataError

log = logging.getLogger(__name__)

SAMPLE_DATA_ROOT = "data/sample"  # the default data.root: the sample dataset is written there on first use


def holdout_split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train_ids, val_ids): a seeded `fraction` of range(n) held out, the same on every run."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(n * fraction))
    return sorted(order[n_val:]), sorted(order[:n_val])


def write_sample_root(cfg, expected_layout: str) -> None:
    """`ensure_data_root`: the default root gets the sample on first use, any other missing root is an error.

    The sample is written beside the root, then renamed: a crash never leaves half a dataset there.
    """
    root = Path(cfg.data.root)
    if root.exists():
        return
    if cfg.data.root != SAMPLE_DATA_ROOT:
        raise DataError(f"data.root={cfg.data.root!r} does not exist. Expected layout:\n{expected_layout}")
    from .sample import write_sample  # imported here so `python -m <package>.data.sample` runs cleanly

    log.info("data.root=%s does not exist: writing the sample dataset there first.", root)
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_sample(tmp)
        tmp.rename(root)
    except OSError:
        if not root.exists():  # not another process that wrote it first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
