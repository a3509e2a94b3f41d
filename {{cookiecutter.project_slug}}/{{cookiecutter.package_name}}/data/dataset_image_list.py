"""Images named in list files: `<root>/train.txt` and `<root>/val.txt`, or CSV lists.

A `.txt` list holds one `relative/path label` per line, split on the last run of whitespace (paths
may contain spaces); blank lines and `#` comment lines are skipped. A `.csv` list has a header with
`path` and `label` columns (others are ignored). Paths are relative to `data.root` (absolute paths
work too); labels are class names or integers. Hidden files (`._photo.png`, `__MACOSX/`) are skipped
and counted in the log. Without a val list a seeded `data.val_fraction` of train is held out. A test list
(`data.test_list`) is optional: it is only evaluated, never trained on.

Every `dataset.py` has EXPECTED_LAYOUT, PREDICT_INPUTS, ensure_data_root, build_datasets, build_test_set,
preload_split and predict_inputs (for loaders.py and predict.py); its datasets have a `collate_fn`, a
`source(i)`, maybe `take_skipped()` and, for images, `image(i)` (report.py).
"""

import csv
import itertools
import logging
import os
from functools import partial
from pathlib import Path

from ..utils import sort_labels
from . import images
from .common import DataError, holdout_split, write_sample_root
from .images import eval_dataset, image_datasets, is_hidden, preload_split, skip_hidden

log = logging.getLogger(__name__)

EXPECTED_LAYOUT = (
    "  <root>/<data.train_list>  e.g. train.txt: `relative/path/to/image.jpg label` per line\n"
    "  <root>/<data.val_list>    e.g. val.txt, same format (optional)\n"
    "  <root>/<data.test_list>   e.g. test.txt, same format (optional; evaluated only)\n"
    "  <root>/<images...>        paths in the lists are relative to <root>\n"
    "  (or .csv lists with a header row holding `path` and `label` columns)"
)
ensure_data_root = partial(write_sample_root, expected_layout=EXPECTED_LAYOUT)
TXT_FORMAT = "`relative/path label` (the path, whitespace, then the label; `#` starts a comment line)"
PREDICT_INPUTS = f"{images.PREDICT_INPUTS}, and .txt or .csv lists of image paths relative to the list (labels ignored)"

__all__ = [
    "EXPECTED_LAYOUT",
    "PREDICT_INPUTS",
    "build_datasets",
    "build_test_set",
    "ensure_data_root",
    "predict_inputs",
    "preload_split",
]


def txt_rows(path: Path, file, labelled: bool):
    for line_number, line in enumerate(file, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not labelled:  # the whole line; the caller decides whether it ends in a label
            yield line_number, text, ""
            continue
        parts = text.rsplit(None, 1)  # the last run of whitespace: paths may contain spaces
        if len(parts) != 2:
            raise DataError(f"{path} line {line_number}: {text!r} is not {TXT_FORMAT}")
        yield line_number, parts[0], parts[1]


def csv_rows(path: Path, file, labelled: bool):
    reader = csv.reader(file)
    columns = ("path", "label") if labelled else ("path",)
    named = " and ".join(f"`{column}`" for column in columns)
    try:
        header = [name.strip() for name in next(reader, [])]
        if any(column not in header for column in columns):
            raise DataError(f"{path} needs a header row with {named} columns; found columns {header}")
        at = [header.index(column) for column in columns]
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank line
            # reader.line_num is the physical line, right even after a quoted multi-line field.
            if len(row) <= max(at) or not all(row[i].strip() for i in at):
                raise DataError(
                    f"{path} line {reader.line_num}: {','.join(row)!r} has no {named} values "
                    f"(expected rows matching the header {','.join(header)!r})"
                )
            yield reader.line_num, row[at[0]].strip(), row[at[1]].strip() if labelled else ""
    except csv.Error as err:
        raise DataError(f"{path} line {reader.line_num}: malformed CSV ({err})") from None


def list_rows(path: Path, labelled: bool = True):
    """(line number, path text, label text) per entry of a list; errors name the file and line.

    Unlabelled (predict.py's lists), a .txt line is yielded whole and a .csv needs only a `path` column.
    """
    is_csv = path.suffix.lower() == ".csv"
    try:
        # utf-8-sig: lists saved by Excel or Windows tools start with a byte-order mark.
        with open(path, newline="" if is_csv else None, encoding="utf-8-sig") as file:
            yield from (csv_rows if is_csv else txt_rows)(path, file, labelled)
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err})") from None


def read_list(path: Path) -> list[tuple[str, str]]:
    """(path text, label text) pairs of a list file in file order, hidden files skipped (and logged)."""
    entries = skip_hidden([(image, label) for _, image, label in list_rows(path)], path, lambda entry: entry[0])
    if not entries:
        expected = "rows under its `path,label` header" if path.suffix.lower() == ".csv" else f"lines {TXT_FORMAT}"
        raise DataError(f"{path} lists no images; expected {expected}")
    return entries


def to_samples(list_path: Path, entries, root: Path, classes: list[str]) -> list[tuple[str, int]]:
    """(image path, class index) pairs; paths are joined to root as strings, never opened here."""
    index = {str(name): i for i, name in enumerate(classes)}
    try:
        return [(os.path.join(root, image), index[label]) for image, label in entries]
    except KeyError as err:
        # Errors are rare: find the line by reading the list again rather than keeping line numbers.
        position = next(i for i, (_, label) in enumerate(entries) if label not in index)
        rows = (row for row in list_rows(list_path) if not is_hidden(row[1]))
        line_number, image, label = next(itertools.islice(rows, position, None))
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
    return image_datasets(cfg, train_samples, val_samples, classes, data_info)


def build_test_set(cfg, data_info: dict):
    """The images of `<root>/<data.test_list>`, transformed as validation is; None without that list."""
    root = Path(cfg.data.root)
    path = root / cfg.data.test_list if cfg.data.test_list else None
    if path is None or not path.is_file():
        return None
    classes = [str(name) for name in data_info["classes"]]
    return eval_dataset(cfg, to_samples(path, read_list(path), root, classes), data_info)


def listed_images(path: Path) -> list[Path]:
    """The images of a list given to predict.py, relative to its folder; a `path label` line gives its path."""
    found = []
    for line_number, text, _ in skip_hidden(list(list_rows(path, labelled=False)), path, lambda row: row[1]):
        # The whole line, else without its last word (a label): paths may contain spaces.
        candidates = [text, text.rsplit(None, 1)[0]] if path.suffix.lower() == ".txt" else [text]
        image = next((path.parent / p for p in candidates if (path.parent / p).is_file()), None)
        if image is None:
            raise DataError(
                f"{path} line {line_number}: no image file {path.parent / text} (paths are relative to the list)"
            )
        found.append(image)
    if not found:
        raise DataError(f"{path} lists no images")
    return found


def predict_inputs(inputs: list[str], data_info: dict, cfg, batch_size: int):
    """As for the other image types, with each .txt or .csv list replaced by the images it lists."""
    expanded = []
    for text in inputs:
        is_list = Path(text).suffix.lower() in (".txt", ".csv") and Path(text).is_file()
        expanded += [str(p) for p in listed_images(Path(text))] if is_list else [text]
    return images.predict_inputs(expanded, data_info, cfg, batch_size)
