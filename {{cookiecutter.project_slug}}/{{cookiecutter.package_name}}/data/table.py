"""Tables as they come: read a CSV with pandas, name its columns' roles, keep its ids and line numbers.

pandas parses (its C parser, CHUNK_ROWS rows at a time); the rules below are this project's own.
- Gaps: an empty cell, or one of `data.na_values` (NA, N/A, NaN, null, None, ?, - ... as R and pandas
  read them). A column that is almost all numbers but holds a few other words gets a WARNING that names
  them (make them gaps with data.na_values, or declare the column in data.categorical_columns).
- Ids: a column named like an index (id, index, rownames, "Unnamed: 0", an empty name, *_id) is not a
  feature unless data.numeric_columns / data.categorical_columns name it; it is copied, with the
  data.drop_columns, into every predictions file. Another column with a different value in every row
  is a feature, with a WARNING.
- Roles come from `data.numeric_columns` / `data.categorical_columns`, or are inferred from train:
  numeric when every value that is not a gap is a number, categorical otherwise.
Rows are named by their line in the file: the header is line 1, the first row line 2 (blank lines
aside), in errors and in predictions alike. preprocessing.py learns the encoding from the train table.
"""

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas
import torch

from ..errors import DataError
from .targets import EMPTY_LABELS

log = logging.getLogger(__name__)

INDEX_NAMES = {"", "id", "index", "rownames", "row.names", "row_names"}  # and "Unnamed: N", "*_id"
MIN_ROWS_FOR_ID_WARNING = 20  # fewer rows: distinct values in every row say little
CHUNK_ROWS = 100_000  # rows pandas reads at a time: a chunk's frame, never the whole file's (peak memory)
NUMBERS_SHARE = 0.9  # a text column with at least this share of numbers gets the warning


def is_index_name(name: str) -> bool:
    lower = name.lower()
    return lower in INDEX_NAMES or lower.startswith("unnamed:") or lower.endswith("_id")


@dataclass
class Table:
    """A CSV held column by column: numbers as float64 (NaN for gaps), categories as codes, ids as text."""

    path: Path
    numbers: list  # one float64 tensor per numeric column, NaN for gaps, as read (shared by `take`)
    numeric_names: list  # the columns of `numbers`
    categorical: dict  # column -> (int64 codes, the levels they index)
    labels: np.ndarray  # the label column as text (an object array; (rows, k) for k columns); empty: not read
    row_ids: torch.Tensor  # each row's position among the rows (0: line 2)
    ids: dict = field(default_factory=dict)  # id column -> numpy array of its text, copied into predictions
    picked: torch.Tensor | None = None  # the rows of `numbers` this table holds; None: all of them
    label_names: list = field(default_factory=list)  # the label columns read

    @property
    def rows(self) -> int:
        return len(self.row_ids)

    def column(self, name: str) -> torch.Tensor:
        """The float64 values of numeric column `name`, in this table's rows."""
        return self.numbers_at([self.numeric_names.index(name)]).flatten()

    def numbers_at(self, columns: list[int], start: int = 0, stop: int | None = None) -> torch.Tensor:
        """float64 (rows start:stop, columns): copied out a chunk at a time, never the whole table."""
        out = torch.empty(len(columns), len(self.row_ids[start:stop]), dtype=torch.float64)
        for j, column in enumerate(columns):
            if self.picked is None:
                out[j] = self.numbers[column][start:stop]
            else:
                torch.index_select(self.numbers[column], 0, self.picked[start:stop], out=out[j])
        return out.T

    def take(self, ids: list[int]) -> "Table":
        index = torch.as_tensor(ids, dtype=torch.int64)
        categorical = {name: (codes[index], levels) for name, (codes, levels) in self.categorical.items()}
        labels = self.labels[index.numpy()] if len(self.labels) else self.labels
        kept = {name: values[index.numpy()] for name, values in self.ids.items()}
        picked = index if self.picked is None else self.picked[index]  # the numbers stay where they are
        names = self.numeric_names
        rows = self.row_ids[index]
        return Table(self.path, self.numbers, names, categorical, labels, rows, kept, picked, self.label_names)

    def roles(self) -> dict:
        return dict.fromkeys(self.numeric_names, "numeric") | dict.fromkeys(self.categorical, "categorical")


def read_header(path: Path) -> list[str]:
    """The column names, stripped; an empty one named "Unnamed: N" as pandas names it."""
    if not path.is_file():
        raise DataError(f"{path} {'is a folder' if path.is_dir() else 'does not exist'}")
    with open(path, newline="", encoding="utf-8-sig") as file:  # utf-8-sig: Excel's byte-order mark
        header = [name.strip() or f"Unnamed: {i}" for i, name in enumerate(next(csv.reader(file), []))]
    if repeated := sorted({name for name in header if header.count(name) > 1}):
        raise DataError(f"{path}: the header names {repeated} more than once; column names must be unique")
    return header


def read_table(path: Path, label_column, columns=None, *, configured=None, drop=(), na_values=(), ids=()) -> Table:
    """Read `path`. `columns` ({name: "numeric" | "categorical"}) fixes the columns to read and how; None
    reads every column but the label, `drop` and the ones named like an index (those become `ids`), with
    the roles `configured` gives ({name: role}) or inferred. Cells in `na_values` are gaps. With a
    `label_column` (a name, or a list of names) the labels are read too, and the columns must be there;
    an empty label cell (or a gap) is an error unless targets.py's EMPTY_LABELS (then it is the text "")."""
    header = read_header(path)
    label_names = [] if label_column is None else [label_column] if isinstance(label_column, str) else label_column
    if missing := [name for name in label_names if name not in header]:
        raise DataError(f"{path} has no label column {missing[0]!r} (set data.label_column); columns: {header}")
    if columns is None:
        configured = configured or {}
        if unknown := [name for name in configured if name not in header]:
            raise DataError(f"data.numeric_columns / data.categorical_columns name {unknown}, not in {path}")
        if absent := [name for name in drop if name not in header]:
            log.info("data.drop_columns: %s not in %s, nothing to drop there", absent, path.name)
        others = [name for name in header if name not in label_names and name not in configured]
        ids = [name for name in others if name in drop or is_index_name(name)]
        columns = {name: configured.get(name) for name in header if name not in label_names and name not in ids}
    elif missing := [name for name in columns if name not in header]:
        raise DataError(
            f"{path} has no column {', '.join(map(repr, missing))}; the model needs the columns "
            f"{list(columns)} (by name, in any order; other columns are ignored), found {header}"
        )
    ids = [name for name in ids if name in header]
    text = [*label_names, *ids]
    text += [name for name, role in columns.items() if role == "categorical"]
    wanted = [name for name in header if name in text or name in columns]
    read, whole = _read_columns(path, header, wanted, text, na_values)
    numeric = [name for name, role in columns.items() if role != "categorical" and isinstance(read[name], np.ndarray)]
    if bad := [name for name, role in columns.items() if role == "numeric" and name not in numeric]:
        raise _not_a_number(path, bad[0], *_codes(read[bad[0]], strip=False), na_values)
    first = read[wanted[0]]
    rows = torch.arange(len(first) if isinstance(first, np.ndarray) else sum(len(codes) for codes, _ in first))
    numbers = [torch.from_numpy(read.pop(name)) for name in numeric]
    categorical = {}
    for name in [name for name in columns if name not in numeric]:
        categorical[name] = _codes(read.pop(name))
        if columns[name] is None:
            _warn_if_mostly_numbers(path, name, *categorical[name])
    labels = [_labels(path, name, *_codes(read.pop(name)), na_values) for name in label_names]
    labels = labels[0] if isinstance(label_column, str) else np.stack(labels, 1) if labels else np.array([], object)
    kept = {name: _text(*_codes(read.pop(name), strip=False)) for name in ids}
    table = Table(path, numbers, numeric, categorical, labels, rows, kept, label_names=label_names)
    if configured is not None:  # train, with roles inferred: ids the names did not give away
        _warn_if_like_an_id(table, [name for name in [*whole, *categorical] if name not in configured])
    if ids and configured is not None:
        log.info("%s: %s are not features (named like an id, or data.drop_columns)", path.name, ids)
    return table


def _read_columns(path: Path, header: list[str], wanted: list[str], text: list[str], na_values) -> tuple[dict, list]:
    """The `wanted` columns, read CHUNK_ROWS rows at a time, so the file is never held whole as a frame.
    A column is a float64 array (NaN for gaps) when pandas reads numbers in every chunk, else text pieces
    [(codes, uniques), ...] as the file writes them (-1: a gap), as `text` columns always are. Columns
    pandas makes dates or true/false of are read again as text. Also returns the whole-number columns."""
    with open(path, newline="", encoding="utf-8-sig") as file:  # the names pandas gives the columns
        raw = [name or f"Unnamed: {i}" for i, name in enumerate(next(csv.reader(file), []))]
    named = {raw[header.index(name)]: name for name in wanted}
    options = {"keep_default_na": False, "na_values": ["", *na_values], "encoding": "utf-8-sig", "index_col": False}
    pieces, again, fractional = {name: [np.empty(0)] for name in wanted}, set(), set()  # no rows: numbers
    for chunk in _chunks(path, options | {"dtype": {raw[header.index(n)]: str for n in text}}):  # no usecols:
        for column, values in chunk.items() if len(chunk) else ():  # it would let a row with extra cells pass
            name = named.get(column)
            if name is None:
                continue
            if name in text or pandas.api.types.is_string_dtype(values):
                pieces[name].append(pandas.factorize(values))
            elif values.dtype.kind in "iuf":  # copied: a view would keep the chunk's block alive
                pieces[name].append(values.to_numpy(np.float64, na_value=np.nan, copy=True))
                fractional |= {name} if values.dtype.kind == "f" and values.notna().any() else set()
            else:
                again.add(name)
    read = {}
    for name, parts in pieces.items():
        arrays = [part for part in parts if isinstance(part, np.ndarray)]
        if name not in again and len(arrays) == len(parts):
            read[name] = np.concatenate(arrays)
        elif name not in again and all(np.isnan(part).all() for part in arrays):  # chunks of gaps only
            read[name] = [part if isinstance(part, tuple) else (np.full(len(part), -1), []) for part in parts]
        else:  # numbers in some chunks, words in others: all of it as text
            again.add(name)
        parts.clear()
    if again:
        columns = {raw[header.index(name)]: name for name in again}
        read |= {name: [] for name in again}
        for chunk in _chunks(path, options | {"usecols": list(columns), "dtype": dict.fromkeys(columns, str)}):
            for column, values in chunk.items():
                read[columns[column]].append(pandas.factorize(values))
    whole = [name for name in wanted if isinstance(read[name], np.ndarray) and name not in fractional]
    return read, whole


def _chunks(path: Path, options: dict):
    try:  # pandas' C parser: faster than its pyarrow engine on 2 cores (benchmarks/tabular.py)
        with pandas.read_csv(path, engine="c", chunksize=CHUNK_ROWS, **options) as reader:
            yield from reader
    except (pandas.errors.ParserError, pandas.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = str(err).split("C error: ")[-1].strip()
        raise DataError(f"{path} cannot be read as a CSV table: {reason}") from None


def _codes(parts: list, strip: bool = True) -> tuple[torch.Tensor, list[str]]:
    """(int64 codes, levels) of text pieces: each cell's level in order of appearance, the text stripped
    (unless `strip` is false); a gap is the level "" (the last one when no cell is blank)."""
    position, codes = {}, []
    for piece, uniques in parts:
        texts = [str(level).strip() if strip else str(level) for level in uniques]
        remap = np.array([position.setdefault(level, len(position)) for level in texts] + [-1], dtype=np.int64)
        codes.append(remap[piece])  # -1 (a gap) indexes the last: -1 again
    gap = position.setdefault("", len(position))
    codes = np.concatenate(codes) if codes else np.empty(0, np.int64)
    codes[codes < 0] = gap
    return torch.from_numpy(codes), list(position)


def _text(codes: torch.Tensor, levels: list[str]) -> np.ndarray:
    return np.array(levels, dtype=object)[codes.numpy()]


def _not_a_number(path: Path, name: str, codes: torch.Tensor, levels: list[str], na_values) -> DataError:
    words = pandas.to_numeric(pandas.Series(levels), errors="coerce").isna().to_numpy() & (np.array(levels) != "")
    row = int(np.flatnonzero(words[codes.numpy()])[0])
    return DataError(
        f"{path} line {row + 2}: column {name!r} = {levels[codes[row]]!r} is not a number. If it marks a gap, "
        f"add it to data.na_values (now {list(na_values)}); if the column holds categories, "
        "put it in data.categorical_columns"
    )


def _warn_if_mostly_numbers(path: Path, name: str, codes: torch.Tensor, levels: list[str]) -> None:
    counts = torch.bincount(codes, minlength=len(levels)).tolist()
    numbers = pandas.to_numeric(pandas.Series(levels), errors="coerce").notna().tolist()
    words = {level: n for level, n, number in zip(levels, counts, numbers, strict=True) if level and not number and n}
    present = sum(n for level, n in zip(levels, counts, strict=True) if level)
    if words and present - sum(words.values()) >= NUMBERS_SHARE * present:
        shown = dict(sorted(words.items(), key=lambda item: -item[1])[:5])
        log.warning(
            "%s: column %r is numbers but for %s (value: count), so it is read as categories. If they mark "
            "gaps, add them to data.na_values; if the column is categories, put it in data.categorical_columns",
            path.name,
            name,
            shown,
        )


def _warn_if_like_an_id(table: Table, names: list[str]) -> None:
    if table.rows < MIN_ROWS_FOR_ID_WARNING:
        return
    for name in names:
        if name in table.numeric_names:
            distinct = table.column(name).unique().numel() == table.rows
        else:
            distinct = len(table.categorical[name][1]) - 1 == table.rows  # the levels but ""
        if distinct:
            log.warning(
                "%s: column %r has a different value in every row, like an id; it is a feature. Put it in "
                "data.drop_columns if it names rows (dropped columns are copied into predictions files)",
                table.path.name,
                name,
            )


def _labels(path: Path, name: str, codes: torch.Tensor, levels: list[str], na_values) -> np.ndarray:
    """The labels as stripped text, an object array ("" for an empty cell or a gap, where EMPTY_LABELS allows it)."""
    labels = _text(codes, levels)
    if not EMPTY_LABELS and (labels == "").any():
        row = int(np.flatnonzero(labels == "")[0])
        where = f"{path} line {row + 2}: the label cell ({name})"
        raise DataError(f"{where} is empty or one of data.na_values {list(na_values)}")
    return labels


def configured_roles(cfg) -> dict:
    """{column: role} from data.numeric_columns and data.categorical_columns (names as text)."""
    numeric = [str(name) for name in cfg.data.numeric_columns]
    categorical = [str(name) for name in cfg.data.categorical_columns]
    if both := sorted(set(numeric) & set(categorical)):
        raise DataError(f"columns {both} are in both data.numeric_columns and data.categorical_columns")
    return dict.fromkeys(numeric, "numeric") | dict.fromkeys(categorical, "categorical")
