"""The tiny dataset and fast settings the tests use: image folders, 4 classes."""

import shutil
from pathlib import Path

from {{ cookiecutter.package_name }}.data.sample import CLASSES, write_sample

# Tiny inputs and model; the rest of the fast settings is in conftest.py.
FAST_DATA = {"data.image_size": 16, "data.batch_size": 8, "model.channels": [4, 8]}
MODEL_WIDTH_KEY = "model.channels"  # the list of ints that sizes the model


def write_tiny_sample(root):
    return write_sample(root, train_per_class=6, val_per_class=2)  # 4 classes: 24 train, 8 val images


def write_tiny_test_split(root):
    """A `test/` split: a copy of val (the tests check the plumbing, not generalisation)."""
    shutil.copytree(root / "val", root / "test")
    return root


def write_renamed_sample(root, val_counts: dict[str, int]) -> tuple[Path, list[str]]:
    """(root, predict.py inputs): the sample's classes renamed to the keys of `val_counts`, in the sample's class
    order, with that many val images each."""
    root = write_sample(root, train_per_class=4, val_per_class=max(val_counts.values()))
    for old, (new, count) in zip(CLASSES, val_counts.items(), strict=True):
        (root / "train" / old).rename(root / "train" / new)
        (root / "val" / old).rename(root / "val" / new)
        for extra in sorted((root / "val" / new).iterdir())[count:]:
            extra.unlink()
    return root, [str(root / "val")]
