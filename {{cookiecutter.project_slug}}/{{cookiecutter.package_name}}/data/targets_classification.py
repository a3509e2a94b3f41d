"""A table's label column as classes: their names, fitted on train, and each row's class id."""

import pandas
import torch

from ..errors import DataError
from ..utils import sort_labels

EMPTY_LABELS = False  # an empty label cell is an error (table.py names its line)


def fit_targets(table, cfg=None) -> dict:
    """data_info's classes, in a natural order ("2" before "10"), and their counts in `table` (train's labels)."""
    counts = pandas.Series(table.labels).value_counts()
    classes = sort_labels(counts.index)
    return {"classes": classes, "num_classes": len(classes), "num_outputs": len(classes)} | {
        "class_counts": [int(counts[name]) for name in classes]  # trainer.class_weights
    }


def encode_targets(table, data_info: dict) -> torch.Tensor:
    """int64 class ids of `table`'s labels (text); a label that is not a known class is an error."""
    index = {name: i for i, name in enumerate(data_info["classes"])}
    codes, uniques = pandas.factorize(table.labels)  # hashing each row once, not a dict lookup per row
    if unknown := sorted(set(uniques) - set(index)):
        raise DataError(f"{table.path} has labels {unknown} that are not among the known classes {list(index)}")
    return torch.tensor([index[label] for label in uniques], dtype=torch.int64)[torch.from_numpy(codes)]
