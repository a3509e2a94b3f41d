"""The tiny dataset and fast settings the tests use: image folders, 4 classes."""

import shutil

from {{ cookiecutter.package_name }}.data.sample import write_sample

# Tiny inputs and model; the rest of the fast settings is in conftest.py.
FAST_DATA = {"data.image_size": 16, "data.batch_size": 8, "model.channels": [4, 8]}
MODEL_WIDTH_KEY = "model.channels"  # the list of ints that sizes the model


def write_tiny_sample(root):
    return write_sample(root, train_per_class=6, val_per_class=2)  # 4 classes: 24 train, 8 val images


def write_tiny_test_split(root):
    """A `test/` split: a copy of val (the tests check the plumbing, not generalisation)."""
    shutil.copytree(root / "val", root / "test")
    return root
