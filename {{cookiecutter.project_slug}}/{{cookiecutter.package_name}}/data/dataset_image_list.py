"""Images named in list files: `<root>/train.txt` and `<root>/val.txt`, or CSV lists.

A `.txt` list holds one `relative/path label` per line, split on the last run of
whitespace (so paths may contain spaces); blank lines and `#` comment lines are
skipped. A `.csv` list has a header with `path` and `label` columns (others are
ignored). Paths are relative to `data.root` (absolute paths work too); labels are
class names or integers. Only the path strings are kept: images are read lazily
(memory grows with the list, not the images) by `images.py`, which also decodes
and transforms them. Without a val list a seeded `data.val_fraction` of train is held out.
"""

import csv
import itertools
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from .common import DataError, holdout_split
from .images import image_datasets, open_image

log = logging.getLogger(__name__)

EXPECTED_LAYOUT = (
    "  <root>/<data.train_list>  e.g. train.txt: `relative/path/to/image.jpg label` per line\n"
    "  <root>/<data.val_list>    e.g. val.txt, same format (optional)\n"
    "  <root>/<images...>        paths in the lists are relative to <root>\n"
    "  (or .csv lists with a header row holding `path` and `label` columns)"
)
TXT_FORMAT = "`relative/path label` (the path, whitespace, then the label; `#` starts a comment line)"

__all__ = ["EXPECTED_LAYOUT", "DataError", "build_datasets", "read_list", "sort_labels"]


def _txt_rows(path: Path, file) -> Iterator[tuple[int, str, str]]:
    for line_number, line in enumerate(file, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.rsplit(None, 1)  # the last run of whitespace: paths may contain spaces
        if len(parts) != 2:
            raise DataError(f"{path} line {line_number}: {text!r} is not {TXT_FORMAT}")
        yield line_number, parts[0], parts[1]


def _csv_rows(path: Path, file) -> Iterator[tuple[int, str, str]]:
    reader = csv.reader(file)
    try:
        header = [name.strip() for name in next(reader, [])]
        if "path" not in header or "label" not in header:
            raise DataError(f"{path} needs a header row with `path` and `label` columns; found columns {header}")
        path_at, label_at = header.index("path"), header.index("label")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank line
            # reader.line_num is the physical line, right even after a quoted multi-line field.
            if len(row) <= max(path_at, label_at) or not row[path_at].strip() or not row[label_at].strip():
                raise DataError(
                    f"{path} line {reader.line_num}: {','.join(row)!r} has no `path` and `label` values "
                    f"(expected rows matching the header {','.join(header)!r})"
                )
            yield reader.line_num, row[path_at].strip(), row[label_at].strip()
    except csv.Error as err:
        raise DataError(f"{path} line {reader.line_num}: malformed CSV ({err})") from None


def _rows(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line number, path text, label text) per entry of a .txt or .csv list."""
    is_csv = path.suffix.lower() == ".csv"
    try:
        # utf-8-sig: lists saved by Excel or Windows tools start with a byte-order mark.
        with open(path, newline="" if is_csv else None, encoding="utf-8-sig") as file:
            yield from (_csv_rows if is_csv else _txt_rows)(path, file)
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err})") from None


def read_list(path) -> list[tuple[str, str]]:
    """(path text, label text) pairs of a list file, in file order; errors name file and line."""
    path = Path(path)
    entries = [(image, label) for _, image, label in _rows(path)]
    if not entries:
        expected = "rows under its `path,label` header" if path.suffix.lower() == ".csv" else f"lines {TXT_FORMAT}"
        raise DataError(f"{path} lists no images; expected {expected}")
    return entries


def sort_labels(labels) -> list[str]:
    """Class names in a natural order: numerically when every label is an integer, else alphabetically."""
    unique = set(labels)
    try:
        return sorted(unique, key=lambda label: (int(label), label))
    except ValueError:
        return sorted(unique)


def to_samples(list_path: Path, entries, root: Path, classes: list[str]) -> list[tuple[str, int]]:
    """(image path, class index) pairs; paths are joined to root as strings, never opened here."""
    index = {str(name): i for i, name in enumerate(classes)}
    try:
        return [(os.path.join(root, image), index[label]) for image, label in entries]
    except KeyError as err:
        # Errors are rare: find the line by reading the list again rather than keeping line numbers.
        position = next(i for i, (_, label) in enumerate(entries) if label not in index)
        line_number, image, label = next(itertools.islice(_rows(list_path), position, None))
        raise DataError(
            f"{list_path} line {line_number}: label {label!r} (for {image}) is not one of the known classes {classes}"
        ) from err


def build_datasets(cfg, data_info: dict | None = None):
    """(train_set, val_set, data_info); `data_info` from a checkpoint fixes classes and normalisation."""
    root = Path(cfg.data.root)
    train_path = root / cfg.data.train_list
    val_path = root / cfg.data.val_list if cfg.data.val_list else None
    if not train_path.is_file():
        raise DataError(
            f"train list {train_path} does not exist (data.root={cfg.data.root!r}, "
            f"data.train_list={cfg.data.train_list!r}). Expected layout under data.root:\n{EXPECTED_LAYOUT}"
        )
    train_entries = read_list(train_path)
    if data_info is not None:
        classes = [str(name) for name in data_info["classes"]]  # the checkpoint's order, not the list's
    else:
        # From the whole train list, so a held-out val split never meets an unknown label.
        classes = sort_labels(label for _, label in train_entries)
    train_samples = to_samples(train_path, train_entries, root, classes)
    del train_entries  # the label strings are no longer needed; keep only paths and indices
    if val_path is not None and val_path.is_file():
        val_samples = to_samples(val_path, read_list(val_path), root, classes)
    else:
        log.info("no val list %s: holding out data.val_fraction=%s of the train list", val_path, cfg.data.val_fraction)
        train_ids, val_ids = holdout_split(len(train_samples), cfg.data.val_fraction, cfg.seed)
        val_samples = [train_samples[i] for i in val_ids]
        train_samples = [train_samples[i] for i in train_ids]
    if not train_samples:
        raise DataError(
            f"{train_path} lists {len(val_samples)} image(s): too few to hold out a val split "
            "(add images, add a val list, or change data.val_fraction)"
        )
    return image_datasets(cfg, train_samples, val_samples, open_image, classes, data_info)
