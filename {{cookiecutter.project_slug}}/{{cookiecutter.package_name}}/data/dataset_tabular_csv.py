"""A table in CSV: `<root>/train.csv`, `<root>/val.csv` and `<root>/test.csv`, a label column and feature columns.

Read once and held in memory as tensors. The preprocessing (roles, gaps, scaling, levels: table.py and
preprocessing.py) is learned from the *train* rows only and saved in `data_info`, which every checkpoint
carries to evaluation and predict.py. Columns are matched by name. Without `val.csv` a seeded
`data.val_fraction` of train is held out. `test.csv` is only evaluated, never trained on.

Every `dataset.py` has EXPECTED_LAYOUT, PREDICT_INPUTS, ensure_data_root, build_datasets, build_test_set,
preload_split and predict_inputs (loaders.py, predict.py); its datasets a `collate_fn` and `source(i)` (report.py).
"""

import logging
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from .common import DataError, holdout_split, write_sample_root
from .preload import check_fits, gib
from .preprocessing import column_roles, encode, fit_preprocessing, reading
from .preprocessing import predict_inputs as predict_inputs  # predict.py's, with every dataset.py's
from .table import configured_roles, read_table
from .targets import encode_targets, fit_targets

log = logging.getLogger(__name__)

EXPECTED_LAYOUT = (
    "  <root>/train.csv  (a header row; a label column and feature columns, numbers or categories, gaps allowed)\n"
    "  <root>/val.csv    (optional, the same columns in any order)\n"
    "  <root>/test.csv   (optional, the same columns; evaluated only)"
)
ensure_data_root = partial(write_sample_root, expected_layout=EXPECTED_LAYOUT)
PREDICT_INPUTS = "CSV files with the checkpoint's feature columns (by name; others ignored), rows named `file:line`"


class TabularDataset(TensorDataset):
    """Encoded features (N, F) and targets (targets.py's encoding of the label columns), held in memory."""

    collate_fn = None  # the default collate

    def __init__(self, table, data_info: dict):
        self.features = encode(table, data_info)
        self.labels = encode_targets(table, data_info)
        self.file = table.path.name
        self.row_ids = table.row_ids
        self.id_columns = list(table.ids)
        self.id_values = list(table.ids.values())
        super().__init__(self.features, self.labels)

    def source(self, index: int) -> str:
        """`file:line` of sample `index` (line 2: the first under the header), for predictions.csv."""
        return f"{self.file}:{int(self.row_ids[index]) + 2}"

    def ids(self, index: int) -> list[str]:
        """The values of `id_columns` for sample `index`: predictions.csv carries them, to join it back."""
        return [values[index] for values in self.id_values]


def build_datasets(cfg, data_info: dict | None = None):
    """(train_set, val_set, data_info); `data_info` from a checkpoint fixes columns, targets and preprocessing."""
    root = Path(cfg.data.root)
    train_path = root / "train.csv"
    val_path = root / "val.csv"
    if not train_path.is_file():
        raise DataError(f"{train_path} does not exist. Expected layout under data.root:\n{EXPECTED_LAYOUT}")
    if data_info is not None and "numeric" not in data_info:
        raise DataError("the checkpoint's data_info predates column roles (numeric/categorical); train it again")
    label_column = data_info["label_column"] if data_info else cfg.data.label_column
    na_values = data_info.get("na_values", []) if data_info else [str(token) for token in cfg.data.na_values]
    if data_info:
        train = read_table(train_path, label_column, column_roles(data_info), **reading(data_info))
    else:
        drop = [str(name) for name in cfg.data.drop_columns]
        train = read_table(train_path, label_column, configured=configured_roles(cfg), drop=drop, na_values=na_values)
    if val_path.is_file():
        val = read_table(val_path, label_column, train.roles(), na_values=na_values, ids=list(train.ids))
    else:
        # No val.csv: hold out a seeded share of train (the same split on every run).
        train_ids, val_ids = holdout_split(train.rows, cfg.data.val_fraction, cfg.seed)
        train, val = train.take(train_ids), train.take(val_ids)
    if not train.rows or not val.rows:
        raise DataError(
            f"{train.rows} train / {val.rows} val rows under {root}: no rows to train on or validate with "
            "(add rows, add a val.csv, or change data.val_fraction)"
        )
    if data_info is None:
        prep = fit_preprocessing(train, cfg)
        data_info = {**fit_targets(train, cfg), "label_column": label_column, **prep}
        data_info |= {"na_values": na_values, "id_columns": list(train.ids)}
    data_info = {**data_info, "feature_columns": list(column_roles(data_info))}
    train_set = TabularDataset(train, data_info)
    val_set = TabularDataset(val, data_info)
    nbytes = train_set.features.nbytes + val_set.features.nbytes
    width = data_info["num_features"]
    log.info("%d train / %d val rows as %d features in memory: %s", train.rows, val.rows, width, gib(nbytes))
    return train_set, val_set, data_info


def build_test_set(cfg, data_info: dict):
    """`<root>/test.csv`, encoded with the checkpoint's preprocessing; None without that file."""
    path = Path(cfg.data.root) / "test.csv"
    if not path.is_file():
        return None
    table = read_table(path, data_info["label_column"], column_roles(data_info), **reading(data_info))
    return TabularDataset(table, data_info)


def preload_split(dataset: TabularDataset, cfg, device: torch.device, split: str):
    """(features on `device`, labels, None): the table is parsed already, so preloading only moves it."""
    what = f"{len(dataset)} {split} rows"
    check_fits(dataset.features.nbytes, device, cfg, what)
    inputs, targets = dataset.features.to(device), dataset.labels.to(device)
    log.info("preloaded %s into %s memory: %s", what, device.type.upper(), gib(inputs.nbytes))
    return inputs, targets, None
