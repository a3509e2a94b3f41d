"""The tiny dataset and fast settings the tests use: a CSV table, 3 classes."""

import csv
import shutil
from pathlib import Path

from {{ cookiecutter.package_name }}.data.sample import CLASS_CENTRES, write_sample

# A small model; the rest of the fast settings is in conftest.py.
FAST_DATA = {"data.batch_size": 16, "model.hidden_sizes": [16, 16]}
MODEL_WIDTH_KEY = "model.hidden_sizes"  # the list of ints that sizes the model


def write_tiny_sample(root):
    return write_sample(root, train_rows=60, val_rows=30)  # 3 classes


def write_tiny_test_split(root):
    """A `test.csv`: a copy of val (the tests check the plumbing, not generalisation)."""
    shutil.copy(root / "val.csv", root / "test.csv")
    return root


def write_renamed_sample(root, val_counts: dict[str, int]) -> tuple[Path, list[str]]:
    """(root, predict.py inputs): the sample's labels renamed to the keys of `val_counts` in the sample's class
    order (the last key takes every second row of the last class), with that many val rows each."""
    root = write_sample(root, train_rows=60, val_rows=12 * max(val_counts.values()))
    names = list(val_counts)
    new_name = dict(zip(CLASS_CENTRES, names, strict=False))
    for split in ("train", "val"):
        with open(root / f"{split}.csv", newline="", encoding="utf-8") as file:
            header, *rows = csv.reader(file)
        kept, seen, at = [], dict.fromkeys(names, 0), header.index("label")
        for i, row in enumerate(rows):
            name = new_name[row[at]]
            name = names[-1] if name == names[-2] and i % 2 else name
            seen[name] += 1
            if split == "train" or seen[name] <= val_counts[name]:
                kept.append([*row[:at], name, *row[at + 1 :]])
        with open(root / f"{split}.csv", "w", newline="", encoding="utf-8") as file:
            csv.writer(file).writerows([header, *kept])
    return root, [str(root / "val.csv")]
