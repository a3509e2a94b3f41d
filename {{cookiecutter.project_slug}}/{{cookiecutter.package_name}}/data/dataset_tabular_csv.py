"""A table in CSV: `<root>/train.csv` and `<root>/val.csv`, numeric features plus a label column.

The whole table is small next to images, so it is parsed once and held in memory as
float tensors. Features are standardised with the *train* mean/std; string (or int)
labels are mapped to ids. Both are returned in `data_info`, saved in every checkpoint
and reused by evaluation. Without `val.csv` a seeded `data.val_fraction` of train is held out.
"""

import csv
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .common import DataError, holdout_split

EXPECTED_LAYOUT = (
    "  <root>/train.csv  (header row; numeric feature columns and a label column)\n"
    "  <root>/val.csv    (optional, same columns)"
)


def read_table(path: Path, label_column: str) -> tuple[list[str], list[list[float]], list[str]]:
    """(feature_columns, rows of floats, labels as strings); errors name file, line and column."""
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        columns = reader.fieldnames or []
        if label_column not in columns:
            raise DataError(f"{path} has no label column {label_column!r} (set data.label_column); columns: {columns}")
        features = [c for c in columns if c != label_column]
        rows, labels = [], []
        for line, record in enumerate(reader, start=2):
            try:
                rows.append([float(record[c]) for c in features])
            except (TypeError, ValueError):
                bad = next(c for c in features if not _is_number(record[c]))
                raise DataError(f"{path} line {line}: column {bad!r} = {record[bad]!r} is not a number") from None
            labels.append(record[label_column].strip())
    if not rows:
        raise DataError(f"{path} has a header but no rows")
    return features, rows, labels


def _is_number(text) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def sort_labels(labels) -> list[str]:
    """Class names in a natural order: numerically when every label is a number."""
    unique = set(labels)
    return sorted(unique, key=float) if all(_is_number(v) for v in unique) else sorted(unique)


class TabularDataset(Dataset):
    def __init__(self, features: torch.Tensor, labels: torch.Tensor):
        self.features = features
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.features[index], self.labels[index]


def _to_tensors(path, features, rows, labels, columns, classes, mean, std):
    if set(features) != set(columns):
        raise DataError(f"{path} has feature columns {features}; expected {columns}")
    order = [features.index(c) for c in columns]  # same column order as train
    x = torch.tensor(rows, dtype=torch.float32)[:, order]
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DataError(f"{path} has labels {unknown} that are not among the known classes {classes}")
    y = torch.tensor([index[v] for v in labels], dtype=torch.int64)
    return TabularDataset((x - torch.tensor(mean)) / torch.tensor(std), y)


def build_datasets(cfg, data_info: dict | None = None):
    """(train_set, val_set, data_info); `data_info` from a checkpoint fixes classes and scaling."""
    root = Path(cfg.data.root)
    train_path, val_path = root / "train.csv", root / "val.csv"
    if not train_path.is_file():
        raise DataError(f"{train_path} does not exist. Expected layout under data.root:\n{EXPECTED_LAYOUT}")
    label_column = cfg.data.label_column
    features, rows, labels = read_table(train_path, label_column)
    if val_path.is_file():
        val_table = read_table(val_path, label_column)
    else:
        # No val.csv: hold out a seeded share of train (the same split on every run).
        train_ids, val_ids = holdout_split(len(rows), cfg.data.val_fraction, cfg.seed)
        val_table = (features, [rows[i] for i in val_ids], [labels[i] for i in val_ids])
        rows, labels = [rows[i] for i in train_ids], [labels[i] for i in train_ids]
    if not rows:
        raise DataError(f"{train_path} has {len(rows) + len(val_table[1])} rows: too few to hold out a val split")
    if data_info is None:
        x = torch.tensor(rows, dtype=torch.float64)
        std = x.std(dim=0, unbiased=False)
        std[std == 0] = 1.0  # a constant column stays constant instead of dividing by zero
        data_info = {
            "classes": sort_labels(labels),
            "feature_columns": features,
            "label_column": label_column,
            "mean": x.mean(dim=0).tolist(),
            "std": std.tolist(),
        }
    data_info = dict(data_info)
    data_info["num_classes"] = len(data_info["classes"])
    data_info["num_features"] = len(data_info["feature_columns"])
    keys = [data_info[k] for k in ("feature_columns", "classes", "mean", "std")]
    train_set = _to_tensors(train_path, features, rows, labels, *keys)
    val_set = _to_tensors(val_path if val_path.is_file() else train_path, *val_table, *keys)
    return train_set, val_set, data_info
