"""A table in CSV: `<root>/train.csv` and `<root>/val.csv`, numeric features plus a label column.

Parsed once and held in memory. Features are standardised with the *train* mean/std, saved in
`data_info` with the columns and classes for evaluation and predict.py. Columns are matched by name.
Without `val.csv` a seeded `data.val_fraction` of train is held out.

Every `dataset.py` has EXPECTED_LAYOUT, PREDICT_INPUTS, ensure_data_root, build_datasets, preload_split and
predict_inputs (for loaders.py and predict.py); its datasets have a `collate_fn`, maybe `take_skipped()`.
"""

import csv
import logging
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from .common import DataError, holdout_split, sort_labels, write_sample_root
from .preload import check_fits, gib

log = logging.getLogger(__name__)

EXPECTED_LAYOUT = (
    "  <root>/train.csv  (header row; numeric feature columns and a label column)\n"
    "  <root>/val.csv    (optional, same columns)"
)
ensure_data_root = partial(write_sample_root, expected_layout=EXPECTED_LAYOUT)
PREDICT_INPUTS = "CSV files with the checkpoint's feature columns (by name; others ignored), rows named `file:N` from 1"


def read_table(path: Path, columns: list[str] | None, label_column: str | None = None):
    """(columns, rows of their values as floats, labels); `columns` None: all but `label_column`."""
    if not path.is_file():
        raise DataError(f"{path} {'is a folder' if path.is_dir() else 'does not exist'}")
    # utf-8-sig: tables saved by Excel start with a byte-order mark.
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        header = reader.fieldnames or []
        if label_column is not None and label_column not in header:
            raise DataError(f"{path} has no label column {label_column!r} (set data.label_column); columns: {header}")
        columns = columns or [c for c in header if c != label_column]
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(
                f"{path} has no feature column {', '.join(map(repr, missing))}; expected the columns {columns} "
                f"(by name, in any order; other columns are ignored), found {header}"
            )
        rows, labels = [], []
        for record in reader:
            row = []
            for column in columns:
                try:
                    row.append(float(record[column]))
                except (TypeError, ValueError):
                    where = f"{path} line {reader.line_num}: column {column!r}"
                    raise DataError(f"{where} = {record[column]!r} is not a number") from None
            rows.append(row)
            if label_column is not None:
                labels.append((record[label_column] or "").strip())
    return columns, rows, labels


def standardise(rows: list[list[float]], data_info: dict) -> torch.Tensor:
    """float32 features scaled with train's mean/std: the same arithmetic for training and predict.py."""
    features = torch.tensor(rows, dtype=torch.float32)
    return (features - torch.tensor(data_info["mean"])) / torch.tensor(data_info["std"])


class TabularDataset(TensorDataset):
    """Standardised features (N, F) and label ids (N,), held in memory."""

    collate_fn = None  # the default collate

    def __init__(self, path: Path, rows, labels, data_info: dict):
        index = {name: i for i, name in enumerate(data_info["classes"])}
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise DataError(f"{path} has labels {unknown} that are not among the known classes {list(index)}")
        self.features = standardise(rows, data_info)
        self.labels = torch.tensor([index[label] for label in labels], dtype=torch.int64)
        super().__init__(self.features, self.labels)


def build_datasets(cfg, data_info: dict | None = None):
    """(train_set, val_set, data_info); `data_info` from a checkpoint fixes columns, classes and scaling."""
    root = Path(cfg.data.root)
    train_path, val_path = root / "train.csv", root / "val.csv"
    if not train_path.is_file():
        raise DataError(f"{train_path} does not exist. Expected layout under data.root:\n{EXPECTED_LAYOUT}")
    label_column = cfg.data.label_column
    columns, rows, labels = read_table(train_path, data_info["feature_columns"] if data_info else None, label_column)
    if val_path.is_file():
        _, val_rows, val_labels = read_table(val_path, columns, label_column)
    else:
        # No val.csv: hold out a seeded share of train (the same split on every run).
        train_ids, val_ids = holdout_split(len(rows), cfg.data.val_fraction, cfg.seed)
        val_rows, val_labels = [rows[i] for i in val_ids], [labels[i] for i in val_ids]
        rows, labels = [rows[i] for i in train_ids], [labels[i] for i in train_ids]
    if not rows or not val_rows:
        raise DataError(
            f"{len(rows)} train / {len(val_rows)} val rows under {root}: no rows to train on or validate with "
            "(add rows, add a val.csv, or change data.val_fraction)"
        )
    if data_info is None:
        x = torch.tensor(rows, dtype=torch.float64)
        std = x.std(dim=0, unbiased=False)
        std[std == 0] = 1.0  # a constant column stays constant instead of dividing by zero
        data_info = {
            "classes": sort_labels(labels),
            "feature_columns": columns,
            "label_column": label_column,
            "mean": x.mean(dim=0).tolist(),
            "std": std.tolist(),
        }
    data_info = {**data_info, "num_classes": len(data_info["classes"]), "num_features": len(columns)}
    val_set = TabularDataset(val_path if val_path.is_file() else train_path, val_rows, val_labels, data_info)
    return TabularDataset(train_path, rows, labels, data_info), val_set, data_info


def preload_split(dataset: TabularDataset, cfg, device: torch.device, split: str):
    """(features on `device`, labels, None): the table is parsed already, so preloading only moves it."""
    what = f"{len(dataset)} {split} rows"
    check_fits(dataset.features.nbytes, device, cfg, what)
    inputs, targets = dataset.features.to(device), dataset.labels.to(device)
    log.info("preloaded %s into %s memory: %s", what, device.type.upper(), gib(inputs.nbytes))
    return inputs, targets, None


def predict_inputs(inputs: list[str], data_info: dict, cfg, batch_size: int):
    """(row names `file:row`, batches of standardised features) for predict.py; row 1 is the first under the header."""
    names, rows = [], []
    for path in map(Path, inputs):
        found = read_table(path, data_info["feature_columns"])[1]
        names += [f"{path}:{row}" for row in range(1, len(found) + 1)]
        rows += found
    if not rows:
        raise DataError(f"no rows found in {', '.join(inputs) or 'the inputs (none given)'}")
    return names, standardise(rows, data_info).split(batch_size)  # already in memory: batch by slicing
