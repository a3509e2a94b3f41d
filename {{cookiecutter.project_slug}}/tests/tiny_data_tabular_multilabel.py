"""The tiny dataset and fast settings the tests use: a CSV table whose `tags` column lists each row's labels."""

import shutil

from {{ cookiecutter.package_name }}.data.sample import write_sample

# A small model; the rest of the fast settings is in conftest.py.
FAST_DATA = {"data.batch_size": 16, "model.hidden_sizes": [16, 16]}
MODEL_WIDTH_KEY = "model.hidden_sizes"  # the list of ints that sizes the model


def write_tiny_sample(root):
    return write_sample(root, train_rows=60, val_rows=30)


def write_tiny_test_split(root):
    """A `test.csv`: a copy of val (the tests check the plumbing, not generalisation)."""
    shutil.copy(root / "val.csv", root / "test.csv")
    return root
