"""Learn a table's preprocessing from the train rows, and apply it to any table read by table.py.

- Numeric: gaps are filled with the train median and flagged in a 0/1 "missing" feature (for
  columns with gaps in train); then the column is standardised with the train mean and std.
- Categorical: the levels seen in train, a gap being the level "". Up to `data.embedding_threshold`
  levels a column is one-hot encoded; above it the model learns an embedding of `embedding_dim(levels)`
  numbers. A level train never had maps to "unknown" (all zeros one-hot, its own embedding row).
The learned preprocessing is plain lists and numbers in `data_info`, saved in every checkpoint, so
evaluate.py and predict.py encode new rows as training did.
"""

import logging

import torch

from ..errors import DataError
from .table import Table

log = logging.getLogger(__name__)


def embedding_dim(levels: int) -> int:
    """Width of a learned embedding for a column with `levels` levels (fastai's rule of thumb)."""
    return min(600, round(1.6 * levels**0.56))


def fit_preprocessing(table: Table, cfg) -> dict:
    """The preprocessing learned from the train table: roles, medians, means, stds, levels (plain types)."""
    values = table.numbers
    if torch.isinf(values).any():
        raise DataError(f"{table.path}: column {_infinite(table)!r} holds an infinite value")
    gaps = values.isnan()
    medians = values.nanmedian(dim=0).values.nan_to_num(nan=0.0)  # a column of gaps only: 0
    filled = torch.where(gaps, medians, values)
    means = filled.mean(dim=0)
    stds = filled.std(dim=0, correction=0) if filled.numel() else means  # no numbers: nothing to scale
    stds = torch.where(stds > 0, stds, 1.0)
    flags = gaps.any(dim=0).tolist()
    numeric = [
        {"name": name, "median": m, "mean": mean, "std": std, "missing_indicator": flag}
        for name, m, mean, std, flag in zip(
            table.numeric_names, medians.tolist(), means.tolist(), stds.tolist(), flags, strict=True
        )
    ]
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


def _infinite(table: Table) -> str:
    return table.numeric_names[int(torch.isinf(table.numbers).any(dim=0).nonzero()[0])]


def column_roles(prep: dict) -> dict:
    """{column: "numeric" | "categorical"}: what `read_table` reads for a model trained with `prep`."""
    return {c["name"]: "numeric" for c in prep["numeric"]} | {c["name"]: "categorical" for c in prep["categorical"]}


def encode(table: Table, prep: dict) -> torch.Tensor:
    """float32 (N, num_features): each standardised number (and its missing flag), one-hot levels, then one
    column of level codes per embedded column (codes are exact in float32 below 2**24). Filled in place."""
    out = torch.zeros(table.rows, prep["num_features"])
    columns = [table.numeric_names.index(c["name"]) for c in prep["numeric"]]
    values = table.numbers if columns == list(range(table.numbers.shape[1])) else table.numbers[:, columns]
    if torch.isinf(values).any():  # it would reach the model as inf and turn the loss into NaN
        raise DataError(f"{table.path}: column {_infinite(table)!r} holds an infinite value")
    medians, means, stds = (
        torch.tensor([c[k] for c in prep["numeric"]], dtype=torch.float64) for k in ("median", "mean", "std")
    )
    gaps = values.isnan()
    flags = torch.tensor([c["missing_indicator"] for c in prep["numeric"]], dtype=torch.bool)
    where = torch.cumsum(1 + flags.long(), dim=0) - 1 - flags.long()  # each number's column; its flag next
    out.index_copy_(1, where, torch.where(gaps, medians, values).sub_(means).div_(stds).float())
    out.index_copy_(1, where[flags] + 1, gaps[:, flags].float())
    start, embedded = int(flags.sum()) + len(columns), []
    rows = torch.arange(table.rows) * out.shape[1]  # each row's first cell in `out`, flat
    for column in prep["categorical"]:
        codes, levels = table.categorical[column["name"]]
        index = {level: i for i, level in enumerate(column["levels"])}
        unknown = len(column["levels"])
        mapped = torch.tensor([index.get(level, unknown) for level in levels], dtype=torch.int64)[codes]
        if count := int((mapped == unknown).sum()):
            name = column["name"]
            log.info("%s: %d value(s) of %r not seen in train, encoded as unknown", table.path.name, count, name)
        if column["embedding_dim"]:
            embedded.append(mapped)
        else:
            known = mapped < unknown
            out.view(-1)[(rows + start + mapped)[known]] = 1.0
            start += unknown
    for j, codes in enumerate(embedded):
        out[:, start + j] = codes.float()
    return out
