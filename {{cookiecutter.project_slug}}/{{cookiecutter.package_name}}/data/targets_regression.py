"""A table's target columns as numbers: their train mean and std, fitted on train, and each row's targets
standardised with them (task.py's `decode` turns predictions back into the targets' units)."""

import logging

import numpy as np
import pandas
import torch

from ..errors import DataError

log = logging.getLogger(__name__)

EMPTY_LABELS = False  # an empty label cell is an error (table.py names its line)


def target_values(table) -> torch.Tensor:
    """float64 (rows, targets) of `table`'s target cells; a cell that is not a number names its line and value."""
    labels = table.labels.reshape(len(table.labels), -1)
    values = np.empty(labels.shape, dtype=np.float64)
    for j, name in enumerate(table.label_names):
        values[:, j] = pandas.to_numeric(pandas.Series(labels[:, j]), errors="coerce").to_numpy(np.float64)
        if (bad := ~np.isfinite(values[:, j])).any():
            row = int(np.flatnonzero(bad)[0])
            line = int(table.row_ids[row]) + 2
            raise DataError(
                f"{table.path} line {line}: the target {name!r} = {labels[row, j]!r} is not a number "
                "(a regression target must be a finite number in every row)"
            )
    return torch.from_numpy(values)


def fit_targets(table, cfg=None) -> dict:
    """data_info's targets: each one's name, train mean and std. A constant target is a WARNING (nothing to learn);
    its std is taken as 1."""
    values = target_values(table)
    targets = []
    for name, column in zip(table.label_names, values.T, strict=True):
        mean, std = column.mean().item(), column.std(correction=0).item()
        if not std > 0:
            log.warning("%s: the target %r is %s in every row; there is nothing to learn", table.path.name, name, mean)
            std = 1.0
        targets.append({"name": name, "mean": mean, "std": std})
    return {"targets": targets, "num_outputs": len(targets)}


def encode_targets(table, data_info: dict) -> torch.Tensor:
    """float32 (rows, targets): the targets standardised with the train mean and std."""
    mean = torch.tensor([target["mean"] for target in data_info["targets"]], dtype=torch.float64)
    std = torch.tensor([target["std"] for target in data_info["targets"]], dtype=torch.float64)
    return ((target_values(table) - mean) / std).float()
