"""The tiny dataset and fast settings the tests use: image lists, 4 classes."""

import shutil
from pathlib import Path

from {{ cookiecutter.package_name }}.data.sample import CLASSES, write_sample

# Tiny inputs and model; the rest of the fast settings is in conftest.py.
FAST_DATA = {"data.image_size": 16, "data.batch_size": 8, "model.channels": [4, 8]}
MODEL_WIDTH_KEY = "model.channels"  # the list of ints that sizes the model


def write_tiny_sample(root):
    return write_sample(root, train_per_class=6, val_per_class=2)  # 4 classes: 24 train, 8 val images


def write_tiny_test_split(root):
    """A test list: a copy of the val list (the tests check the plumbing, not generalisation)."""
    shutil.copy(root / "val.txt", root / "test.txt")
    return root


def write_renamed_sample(root, val_counts: dict[str, int]) -> tuple[Path, list[str]]:
    """(root, predict.py inputs): the sample's labels renamed to the keys of `val_counts`, in the sample's class
    order, with that many val images each."""
    root = write_sample(root, train_per_class=4, val_per_class=max(val_counts.values()))
    new_name = dict(zip(CLASSES, val_counts, strict=True))
    for split in ("train", "val"):
        kept, seen = [], dict.fromkeys(val_counts, 0)
        for line in (root / f"{split}.txt").read_text(encoding="utf-8").splitlines()[1:]:
            path, label = line.rsplit(" ", 1)
            seen[new_name[label]] += 1
            if split == "train" or seen[new_name[label]] <= val_counts[new_name[label]]:
                kept.append(f"{path} {new_name[label]}")
        (root / f"{split}.txt").write_text("\n".join(kept) + "\n", encoding="utf-8")
    return root, [str(root / "val.txt")]
