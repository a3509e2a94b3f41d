"""A table's label columns as yes/no labels: their names, fitted on train, and each row's 0/1 per label.

Two layouts, by data.label_column:
- one column: each cell lists the row's tags, separated by data.label_separator ("a;c"); an empty cell is a row
  without any. The labels are the tags train holds, in a natural order ("2" before "10").
- several columns: one per label, in the order given, each cell 0/1 (also true/false, yes/no); any other value
  is an error naming the file, the line and the value.
"""

import logging

import numpy as np
import pandas
import torch

from ..errors import ConfigError, DataError
from ..utils import sort_labels

log = logging.getLogger(__name__)

EMPTY_LABELS = True  # an empty tag cell is a row without tags (table.py lets it through)
YES = {"1", "1.0", "true", "yes"}
NO = {"0", "0.0", "false", "no"}


def tag_sets(table, separator: str) -> tuple[list[set[str]], np.ndarray]:
    """(the distinct cells' tag sets, each row's index into them) of a one-column table."""
    codes, uniques = pandas.factorize(table.labels.reshape(len(table.labels), -1)[:, 0])
    sets = [{tag.strip() for tag in str(cell).split(separator)} - {""} for cell in uniques]
    return sets, codes


def flags(table) -> torch.Tensor:
    """float32 (rows, columns) of a table of 0/1 columns; another value names its file, line and value."""
    labels = table.labels.reshape(len(table.labels), -1)
    values = np.zeros(labels.shape, dtype=np.float32)
    for j, name in enumerate(table.label_names):
        codes, uniques = pandas.factorize(labels[:, j])
        words = [str(cell).strip().lower() for cell in uniques]
        if bad := [i for i, word in enumerate(words) if word not in YES | NO]:
            row = int(np.flatnonzero(np.isin(codes, bad))[0])
            raise DataError(
                f"{table.path} line {int(table.row_ids[row]) + 2}: the label {name!r} = {labels[row, j]!r} is not "
                "0 or 1 (true/false and yes/no are read too); a label column says yes or no in every row"
            )
        values[:, j] = np.array([word in YES for word in words], dtype=np.float32)[codes]
    return torch.from_numpy(values)


def fit_targets(table, cfg) -> dict:
    """data_info's labels: the tags of train's one column (data.label_separator apart) in a natural order, or the
    columns in the order given; each one's positives in train (`label_counts`, for trainer.class_weights)."""
    separator = cfg.data.label_separator
    if not separator:
        raise ConfigError("data.label_separator is empty; give the text between two tags of a cell, e.g. ';'")
    if len(table.label_names) == 1:
        sets, codes = tag_sets(table, separator)
        labels = sort_labels(set().union(*sets))
        if table.rows and max(map(len, sets), default=0) <= 1:
            log.warning(
                "%s: no row of %r holds more than one tag (%d distinct). Is data.label_separator=%r the "
                "separator of its cells?",
                table.path.name,
                table.label_names[0],
                len(labels),
                separator,
            )
    else:
        labels = list(table.label_names)
    info = {"labels": labels, "num_outputs": len(labels), "label_separator": separator, "train_samples": table.rows}
    counts = encode_targets(table, info).sum(0)
    info["label_counts"] = [int(count) for count in counts.tolist()]
    if never := [name for name, count in zip(labels, info["label_counts"], strict=True) if not count]:
        log.warning(
            "%s: the labels %s are never positive in train: their average precision is undefined (null in the "
            "reports, left out of mAP) and the model learns only to say no",
            table.path.name,
            never,
        )
    return info


def encode_targets(table, data_info: dict) -> torch.Tensor:
    """float32 (rows, labels) of 0/1: each row's labels. A tag train never had is an error naming it."""
    if len(table.label_names) > 1:
        return flags(table)
    sets, codes = tag_sets(table, data_info["label_separator"])
    index = {name: j for j, name in enumerate(data_info["labels"])}
    rows = np.zeros((len(sets), len(index)), dtype=np.float32)
    for i, tags in enumerate(sets):
        if unknown := sorted(tags - set(index)):
            row = int(np.flatnonzero(codes == i)[0])
            raise DataError(
                f"{table.path} line {int(table.row_ids[row]) + 2}: the tags {unknown} are not among the labels "
                f"the model was trained on {list(index)}"
            )
        rows[i, [index[tag] for tag in tags]] = 1.0
    return torch.from_numpy(rows[codes]) if len(codes) else torch.zeros((0, len(index)))
