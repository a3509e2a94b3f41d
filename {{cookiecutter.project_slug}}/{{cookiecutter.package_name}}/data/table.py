"""Tables as they come: read a CSV in one pass, learn the preprocessing from train, apply it anywhere.

Column roles come from `data.numeric_columns` / `data.categorical_columns`, or are inferred from
train: a column is numeric when every non-empty value parses as a number, categorical otherwise.
- Numeric: gaps are filled with the train median and flagged in a 0/1 "missing" feature (for
  columns with gaps in train); then the column is standardised with the train mean and std.
- Categorical: the levels seen in train, an empty cell being a level of its own. Up to
  `data.embedding_threshold` levels a column is one-hot encoded; above it the model learns an
  embedding of `embedding_dim(levels)` numbers. A level train never had maps to "unknown"
  (all zeros one-hot, its own embedding row): counted and logged, never an error.
The learned preprocessing is plain lists and numbers in `data_info`, saved in every checkpoint, so
evaluate.py and predict.py encode new rows exactly as training did.
"""

import csv
import logging
import math
from array import array
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import torch

from ..errors import DataError

log = logging.getLogger(__name__)

CHUNK_ROWS = 16384  # rows parsed per column-wise pass: bounded memory for any file size
EMPTY_AS_NAN = {"": "nan"}.get  # called as EMPTY_AS_NAN(cell, cell): "" -> "nan", any other cell as it is


def embedding_dim(levels: int) -> int:
    """Width of a learned embedding for a column with `levels` levels (fastai's rule of thumb)."""
    return min(600, round(1.6 * levels**0.56))


@dataclass
class Table:
    """A CSV held column by column: numbers as float64 (NaN where empty), categories as codes."""

    path: Path
    numeric: dict  # column -> float64 tensor
    categorical: dict  # column -> (int64 codes, the levels they index, in order of appearance)
    labels: list  # the label column as text; [] when it was not read
    rows: int
    row_ids: torch.Tensor | None = None  # each row's position in the file (0: under the header); None: 0, 1, ...

    def __post_init__(self):
        if self.row_ids is None:
            self.row_ids = torch.arange(self.rows)

    def take(self, ids: list[int]) -> "Table":
        index = torch.tensor(ids, dtype=torch.int64)
        numeric = {name: values[index] for name, values in self.numeric.items()}
        categorical = {name: (codes[index], levels) for name, (codes, levels) in self.categorical.items()}
        labels = [self.labels[i] for i in ids] if self.labels else []
        return Table(self.path, numeric, categorical, labels, len(ids), self.row_ids[index])

    def roles(self) -> dict:
        return dict.fromkeys(self.numeric, "numeric") | dict.fromkeys(self.categorical, "categorical")


def read_table(path: Path, label_column: str | None, columns: dict | None = None, configured=None, drop=()) -> Table:
    """Read `path`. `columns` ({name: "numeric" | "categorical"}) fixes the columns to read and how; None
    reads every column but the label and `drop`, with the roles `configured` gives ({name: role}) or
    inferred. With a `label_column` the labels are read too, and the column must be there."""
    if not path.is_file():
        raise DataError(f"{path} {'is a folder' if path.is_dir() else 'does not exist'}")
    # utf-8-sig: tables saved by Excel start with a byte-order mark.
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        header = [name.strip() for name in next(reader, [])]
        if repeated := sorted({name for name in header if header.count(name) > 1}):
            raise DataError(f"{path}: the header names {repeated} more than once; column names must be unique")
        if label_column is not None and label_column not in header:
            raise DataError(f"{path} has no label column {label_column!r} (set data.label_column); columns: {header}")
        if columns is None:
            configured = configured or {}
            if unknown := [name for name in configured if name not in header]:
                raise DataError(f"data.numeric_columns / data.categorical_columns name {unknown}, not in {path}")
            if absent := [name for name in drop if name not in header]:
                log.info("data.drop_columns: %s not in %s, nothing to drop there", absent, path.name)
            columns = {name: configured.get(name) for name in header if name != label_column and name not in drop}
        elif missing := [name for name in columns if name not in header]:
            raise DataError(
                f"{path} has no column {', '.join(map(repr, missing))}; the model needs the columns "
                f"{list(columns)} (by name, in any order; other columns are ignored), found {header}"
            )
        numeric = {name: array("d") for name, role in columns.items() if role != "categorical"}
        categorical = {name: (array("q"), {}) for name, role in columns.items() if role == "categorical"}
        labels, done, late = [], 0, False  # late: a column inferred numeric for a while, text further down
        while rows := list(islice(reader, CHUNK_ROWS)):
            for i, row in enumerate(rows):
                if len(row) != len(header):  # line numbers: the header is line 1
                    raise DataError(f"{path} line {done + 2 + i} has {len(row)} cells, the header {len(header)}")
            cells = dict(zip(header, zip(*rows, strict=True), strict=True))
            for name in list(numeric):
                values = _numbers(cells[name])
                if isinstance(values, array):
                    numeric[name].extend(values)
                elif columns[name] == "numeric":
                    line, cell = done + 2 + values, cells[name][values]
                    raise DataError(f"{path} line {line}: column {name!r} = {cell!r} is not a number")
                else:  # text: a categorical column
                    late = late or done > 0
                    del numeric[name]
                    categorical[name] = (array("q"), {})
            for name, (codes, levels) in categorical.items():
                codes.extend(levels.setdefault(cell.strip(), len(levels)) for cell in cells[name])
            if label_column is not None:
                labels += _labels(path, cells[label_column], first_line=done + 2)
            done += len(rows)
    if late:  # read again with the roles now known: numbers came before text in some column
        known = {name: "categorical" if name in categorical else "numeric" for name in columns}
        return read_table(path, label_column, known)
    numbers = {name: _tensor(numeric[name], torch.float64) for name in columns if name in numeric}
    coded = {name: (_tensor(codes, torch.int64), list(seen)) for name, (codes, seen) in categorical.items()}
    return Table(path, numbers, {name: coded[name] for name in columns if name in coded}, labels, done)


def _tensor(values: array, dtype: torch.dtype) -> torch.Tensor:
    """A copy of an array('d') or array('q') as a tensor, without a Python loop over its items."""
    return torch.frombuffer(values, dtype=dtype).clone() if len(values) else torch.zeros(0, dtype=dtype)


def _numbers(cells: tuple) -> array | int:
    """The cells as floats (NaN where empty), or the index of the first cell that is not a number."""
    try:  # the fast path, in C: an empty cell reads as "nan" (a gap)
        return array("d", map(float, map(EMPTY_AS_NAN, cells, cells)))
    except ValueError:
        pass
    values = array("d")
    for i, cell in enumerate(cells):
        try:
            values.append(float(cell) if cell.strip() else math.nan)
        except ValueError:
            return i
    return values


def _labels(path: Path, cells: tuple, first_line: int) -> list[str]:
    labels = [cell.strip() for cell in cells]
    if "" in labels:
        raise DataError(f"{path} line {first_line + labels.index('')}: the label cell is empty")
    return labels


def fit_preprocessing(table: Table, cfg) -> dict:
    """The preprocessing learned from the train table: roles, medians, means, stds, levels (plain types)."""
    numeric, categorical = [], []
    for name, values in table.numeric.items():
        if torch.isinf(values).any():
            raise DataError(f"{table.path}: column {name!r} holds an infinite value")
        gaps = values.isnan()
        median = values[~gaps].median().item() if not gaps.all() else 0.0
        filled = values.nan_to_num(nan=median)
        std = filled.std(unbiased=False).item()
        numeric.append(
            {"name": name, "median": median, "mean": filled.mean().item(), "std": std if std > 0 else 1.0,
             "missing_indicator": bool(gaps.any())}
        )  # fmt: skip
    for name, (codes, levels) in table.categorical.items():
        seen = sorted({levels[i] for i in codes.unique().tolist()})
        embedded = len(seen) > cfg.data.embedding_threshold
        categorical.append({"name": name, "levels": seen, "embedding_dim": embedding_dim(len(seen) + 1) * embedded})
    one_hot = [c for c in categorical if not c["embedding_dim"]]
    log.info(
        "%s: numeric columns %s (gaps filled in %s); one-hot %s; embedded %s",
        table.path.name, [c["name"] for c in numeric], [c["name"] for c in numeric if c["missing_indicator"]],
        [c["name"] for c in one_hot], [c["name"] for c in categorical if c["embedding_dim"]],
    )  # fmt: skip
    return {
        "numeric": numeric,
        "categorical": categorical,
        # The width of an encoded row: numbers, missing flags, one-hot columns, one code per embedded column.
        "num_features": sum(1 + c["missing_indicator"] for c in numeric)
        + sum(1 if c["embedding_dim"] else len(c["levels"]) for c in categorical),
        "embeddings": [[len(c["levels"]) + 1, c["embedding_dim"]] for c in categorical if c["embedding_dim"]],
    }


def column_roles(prep: dict) -> dict:
    """{column: "numeric" | "categorical"}: what `read_table` reads for a model trained with `prep`."""
    return {c["name"]: "numeric" for c in prep["numeric"]} | {c["name"]: "categorical" for c in prep["categorical"]}


def encode(table: Table, prep: dict) -> torch.Tensor:
    """float32 (N, num_features): standardised numbers, missing flags, one-hot levels, then one column of
    level codes per embedded column (codes are exact in float32 below 2**24)."""
    dense, embedded = [], []
    for column in prep["numeric"]:
        values = table.numeric[column["name"]]
        if torch.isinf(values).any():  # it would reach the model as inf and turn the loss into NaN
            raise DataError(f"{table.path}: column {column['name']!r} holds an infinite value")
        dense.append(((values.nan_to_num(nan=column["median"]) - column["mean"]) / column["std"]).float())
        if column["missing_indicator"]:
            dense.append(values.isnan().float())
    for column in prep["categorical"]:
        codes, levels = table.categorical[column["name"]]
        index = {level: i for i, level in enumerate(column["levels"])}
        unknown = len(column["levels"])
        mapped = torch.tensor([index.get(level, unknown) for level in levels], dtype=torch.int64)[codes]
        if count := int((mapped == unknown).sum()):
            name = column["name"]
            log.info("%s: %d value(s) of %r not seen in train, encoded as unknown", table.path.name, count, name)
        if column["embedding_dim"]:
            embedded.append(mapped.float())
        else:
            dense += torch.nn.functional.one_hot(mapped, unknown + 1)[:, :unknown].float().unbind(dim=1)
    columns = dense + embedded
    return torch.stack(columns, dim=1) if columns else torch.zeros(table.rows, 0)
