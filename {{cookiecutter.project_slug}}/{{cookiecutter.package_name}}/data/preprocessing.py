"""Learn a table's preprocessing from the train rows, and apply it to any table read by table.py.

- Numeric: gaps are filled with the train median and flagged in a 0/1 "missing" feature (for
  columns with gaps in train); then the column is standardised with the train mean and std.
- Categorical: the levels seen in train, a gap being the level "". Up to `data.embedding_threshold`
  levels a column is one-hot encoded; above it the model learns an embedding of `embedding_dim(levels)`
  numbers. A level train never had maps to "unknown" (all zeros one-hot, its own embedding row).
The learned preprocessing is plain lists and numbers in `data_info`, saved in every checkpoint, so
evaluate.py and predict.py encode new rows as training did (`predict_inputs`: predict.py's CSV files).
"""

import logging
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .table import Table, read_table

log = logging.getLogger(__name__)

CHUNK_ROWS = 65536  # rows standardised at a time: the float64 temporaries stay a few MB


def embedding_dim(levels: int) -> int:
    """Width of a learned embedding for a column with `levels` levels (fastai's rule of thumb)."""
    return min(600, round(1.6 * levels**0.56))


def fit_preprocessing(table: Table, cfg) -> dict:
    """The preprocessing learned from the train table: roles, medians, means, stds, levels (plain types)."""
    numeric = [_numeric_stats(table, name, table.column(name).numpy()) for name in table.numeric_names]
    categorical = []
    for name, (codes, levels) in table.categorical.items():
        counts = torch.bincount(codes, minlength=len(levels))
        seen = sorted(levels[i] for i in counts.nonzero().flatten().tolist())
        embedded = len(seen) > cfg.data.embedding_threshold
        categorical.append({"name": name, "levels": seen, "embedding_dim": embedding_dim(len(seen) + 1) * embedded})
    one_hot = [c for c in categorical if not c["embedding_dim"]]
    log.info(
        "%s: numeric columns %s (gaps filled in %s); one-hot %s; embedded %s",
        table.path.name,
        [c["name"] for c in numeric],
        [c["name"] for c in numeric if c["missing_indicator"]],
        [c["name"] for c in one_hot],
        [c["name"] for c in categorical if c["embedding_dim"]],
    )
    return {
        "numeric": numeric,
        "categorical": categorical,
        # The width of an encoded row: numbers, missing flags, one-hot columns, one code per embedded column.
        "num_features": sum(1 + c["missing_indicator"] for c in numeric)
        + sum(1 if c["embedding_dim"] else len(c["levels"]) for c in categorical),
        "embeddings": [[len(c["levels"]) + 1, c["embedding_dim"]] for c in categorical if c["embedding_dim"]],
    }


def _numeric_stats(table: Table, name: str, values: np.ndarray) -> dict:
    """A column's median (the lower middle value, as torch.median), then the mean and std with gaps as the median."""
    if np.isinf(values).any():
        raise DataError(f"{table.path}: column {name!r} holds an infinite value")
    gaps = np.isnan(values)
    present = values[~gaps]
    middle = (len(present) - 1) // 2
    median = float(np.partition(present, middle)[middle]) if len(present) else 0.0  # only gaps: 0
    filled = np.where(gaps, median, values)
    mean = float(filled.mean())
    std = float(filled.std())
    return {"name": name, "median": median, "mean": mean, "std": std or 1.0, "missing_indicator": bool(gaps.any())}


def column_roles(prep: dict) -> dict:
    """{column: "numeric" | "categorical"}: what `read_table` reads for a model trained with `prep`."""
    return {c["name"]: "numeric" for c in prep["numeric"]} | {c["name"]: "categorical" for c in prep["categorical"]}


def encode(table: Table, prep: dict) -> torch.Tensor:
    """float32 (N, num_features): each standardised number (and its missing flag), one-hot levels, then one
    column of level codes per embedded column (codes are exact in float32 below 2**24). Filled in place."""
    out = torch.zeros(table.rows, prep["num_features"])
    _encode_numbers(table, prep["numeric"], out)
    start = sum(1 + c["missing_indicator"] for c in prep["numeric"])
    embedded = []
    for column in prep["categorical"]:
        mapped = _level_ids(table, column)
        unknown = len(column["levels"])
        if column["embedding_dim"]:
            embedded.append(mapped)
            continue
        # An unknown level writes its 0 into the last one-hot column, which is 0 in that row anyway.
        index = mapped.clamp(max=unknown - 1).unsqueeze(1)
        out[:, start : start + unknown].scatter_(1, index, (mapped < unknown).float().unsqueeze(1))
        start += unknown
    for j, codes in enumerate(embedded):
        out[:, start + j] = codes.float()
    return out


def _encode_numbers(table: Table, numeric: list[dict], out: torch.Tensor) -> None:
    """Numbers and missing flags into `out`, CHUNK_ROWS rows at a time (small float64 temporaries)."""
    columns = [table.numeric_names.index(c["name"]) for c in numeric]
    medians, means, stds = (
        torch.tensor([c[k] for c in numeric], dtype=torch.float64) for k in ("median", "mean", "std")
    )
    flags = torch.tensor([c["missing_indicator"] for c in numeric], dtype=torch.bool)
    where = torch.cumsum(1 + flags.long(), dim=0) - 1 - flags.long()  # each number's column; its flag next
    for start in range(0, table.rows, CHUNK_ROWS):
        rows = out[start : start + CHUNK_ROWS]
        values = table.numbers_at(columns, start, start + CHUNK_ROWS)
        gaps = values.isnan()
        scaled = torch.where(gaps, medians, values).sub_(means).div_(stds).float()
        if torch.isinf(scaled).any():  # it would reach the model as inf and turn the loss into NaN
            name = numeric[int(torch.isinf(scaled).any(dim=0).nonzero()[0])]["name"]
            raise DataError(f"{table.path}: column {name!r} holds an infinite value (or one too large for float32)")
        rows.index_copy_(1, where, scaled)
        rows.index_copy_(1, where[flags] + 1, gaps[:, flags].float())


def _level_ids(table: Table, column: dict) -> torch.Tensor:
    """Each row's index among the column's train levels; len(levels) for a level train never had."""
    codes, levels = table.categorical[column["name"]]
    index = {level: i for i, level in enumerate(column["levels"])}
    unknown = len(column["levels"])
    mapped = torch.tensor([index.get(level, unknown) for level in levels], dtype=torch.int64)[codes]
    if count := int((mapped == unknown).sum()):
        log.info("%s: %d value(s) of %r not seen in train, encoded as unknown", table.path.name, count, column["name"])
    return mapped


def reading(data_info: dict) -> dict:
    """How `read_table` reads a file for a model trained with `data_info`: its gap tokens and id columns."""
    return {"na_values": data_info.get("na_values", []), "ids": data_info.get("id_columns", [])}


def predict_inputs(inputs: list[str], data_info: dict, cfg, batch_size: int):
    """(per row {"input": `file:line`, id column: value}, batches of encoded features) for predict.py;
    line 2 is the first under the header. An id column a file lacks is left empty."""
    names = []
    features = []
    for path in map(Path, inputs):
        table = read_table(path, None, column_roles(data_info), **reading(data_info))  # a label column is ignored
        ids = {name: table.ids.get(name, [""] * table.rows) for name in data_info.get("id_columns", [])}
        names += [{"input": f"{path}:{i + 2}"} | {name: ids[name][i] for name in ids} for i in range(table.rows)]
        features.append(encode(table, data_info))
    if not names:
        raise DataError(f"no rows found in {', '.join(inputs) or 'the inputs (none given)'}")
    return names, torch.cat(features).split(batch_size)  # already in memory: batch by slicing
