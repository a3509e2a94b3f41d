"""Predict classes for new inputs with a trained checkpoint; write one CSV row per input.

Examples:
{% if cookiecutter.dataset_type == "tabular_csv" %}
    python predict.py runs/baseline new_rows.csv                 # writes predictions.csv here
    python predict.py runs/baseline/checkpoints/best.pt a.csv b.csv --output preds.csv
    python predict.py runs/baseline new_rows.csv trainer.device=cpu --batch-size 1024

Inputs are CSV files with a header holding the checkpoint's feature columns (by name, in
any order); a label column and any other column are ignored. Rows are named `file:row`,
row 1 being the first row under the header.
{% else %}
    python predict.py runs/baseline photos/                      # a folder, searched recursively
    python predict.py runs/baseline/checkpoints/best.pt a.jpg b.png --output preds.csv
    python predict.py runs/baseline list.txt trainer.device=cpu --batch-size 128

Inputs are image files, folders (searched recursively for image files, sorted) and .txt
lists of image paths, one per line (relative paths are relative to the list's folder; an
image-list `path label` line works too: the label is ignored; `#` starts a comment line).
{% endif %}

Inputs are preprocessed as validation data was in training, with the checkpoint's own
saved preprocessing (its data_info: {% if cookiecutter.dataset_type == "tabular_csv" %}feature columns, mean, std{% else %}image size, mode, mean, std{% endif %}), never the current
config's. key=value overrides change the rest (trainer.device, data.num_workers, ...).
The CSV has the columns input, prediction (a class name), probability (of the
prediction) and one p_<class> column per class.
"""

import argparse
import csv
import logging
import math
import os
import re
import sys
from pathlib import Path

import torch
{% if cookiecutter.dataset_type != "tabular_csv" %}
from torch.utils.data import DataLoader
{% endif %}
from tqdm import tqdm

from {{ cookiecutter.package_name }}.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model_weights,
    resolve_checkpoint_path,
)
from {{ cookiecutter.package_name }}.config import ConfigError, load_config
from {{ cookiecutter.package_name }}.data import DataError
{% if cookiecutter.dataset_type != "tabular_csv" %}
from {{ cookiecutter.package_name }}.data.images import IMAGE_EXTENSIONS, ImageDataset, build_transforms, open_image
{% endif %}
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.utils.device import resolve_device
from {{ cookiecutter.package_name }}.utils.logs import error_message, setup_logging, show_progress

log = logging.getLogger("{{ cookiecutter.package_name }}.predict")

OVERRIDE = re.compile(r"[A-Za-z_][\w.]*=")  # `key=value`, as train.py and evaluate.py take them


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a .pt file, or a run dir (uses its last.pt)")
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
{% if cookiecutter.dataset_type == "tabular_csv" %}
        help="CSV files with the checkpoint's feature columns; key=value config overrides may be mixed in",
{% else %}
        help="image files, folders or .txt lists of image paths; key=value config overrides may be mixed in",
{% endif %}
    )
    parser.add_argument("--output", type=Path, default=Path("predictions.csv"), help="default: %(default)s")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--batch-size", type=positive_int, help="default: the checkpoint's data.batch_size")
    args = parser.parse_intermixed_args(argv)  # options anywhere
    # Inputs and key=value overrides share the positional list; an existing path is always an input.
    args.overrides = [item for item in args.inputs if OVERRIDE.match(item) and not os.path.exists(item)]
    args.inputs = [item for item in args.inputs if not (OVERRIDE.match(item) and not os.path.exists(item))]
    return args


{% if cookiecutter.dataset_type == "tabular_csv" %}
def is_number(text) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def read_features(inputs: list[str], data_info: dict) -> tuple[list[str], torch.Tensor]:
    """(row names `file:row`, features standardised with the checkpoint's mean/std) of every CSV input."""
    columns = data_info["feature_columns"]
    names, rows = [], []
    for text in inputs:
        path = Path(text)
        if not path.is_file():
            raise DataError(f"input {path} {'is a folder' if path.is_dir() else 'does not exist'}; give CSV files")
        # utf-8-sig: tables saved by Excel start with a byte-order mark.
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            header = reader.fieldnames or []
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataError(
                    f"{path} has no feature column {', '.join(map(repr, missing))}; the checkpoint expects the "
                    f"columns {columns} (by name, in any order; other columns are ignored)"
                )
            for row, record in enumerate(reader, start=1):
                try:
                    rows.append([float(record[c]) for c in columns])  # by name: the training column order
                except (TypeError, ValueError):
                    bad = next(c for c in columns if not is_number(record[c]))
                    raise DataError(
                        f"{path} line {reader.line_num}: column {bad!r} = {record[bad]!r} is not a number"
                    ) from None
                names.append(f"{path}:{row}")
    if not rows:
        raise DataError(f"no rows found in {', '.join(inputs) or 'the inputs (none given)'}")
    # The same float32 arithmetic as the training data pipeline (data/dataset.py).
    features = torch.tensor(rows, dtype=torch.float32)
    return names, (features - torch.tensor(data_info["mean"])) / torch.tensor(data_info["std"])
{% else %}
def read_path_list(path: Path) -> list[Path]:
    """Image paths of a .txt list, one per line; `path label` lines (image-list format) give their path."""
    images = []
    with open(path, encoding="utf-8-sig") as file:
        for line_number, line in enumerate(file, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            # The whole line, else the part before the last run of whitespace (paths may contain spaces).
            candidates = [path.parent / text]
            if len(text.split()) > 1:
                candidates.append(path.parent / text.rsplit(None, 1)[0])
            found = next((p for p in candidates if p.is_file()), None)
            if found is None:
                tried = " or ".join(str(p) for p in candidates)
                raise DataError(f"{path} line {line_number}: no image file {tried} (paths are relative to the list)")
            images.append(found)
    return images


def find_images(inputs: list[str]) -> list[Path]:
    """Image files named directly, found under folders (recursively, sorted) or listed in .txt files."""
    extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
    images = []
    for text in inputs:
        path = Path(text)
        suffix = path.suffix.lower()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not found:
                log.warning("no images (%s) under %s", extensions, path)
            images += found
        elif path.is_file() and suffix == ".txt":
            images += read_path_list(path)
        elif path.is_file() and suffix in IMAGE_EXTENSIONS:
            images.append(path)
        elif not path.exists():
            raise DataError(f"input {path} does not exist")
        else:
            raise DataError(f"input {path} is not an image ({extensions}), a folder or a .txt list of image paths")
    if not images:
        raise DataError(f"no images ({extensions}) found in {', '.join(inputs) or 'the inputs (none given)'}")
    return images
{% endif %}


@torch.inference_mode()
def predict_probabilities(model, batches, device, total: int, progress: bool) -> torch.Tensor:
    """Softmax probabilities (N, num_classes) on the CPU, one batch at a time."""
    model.eval()
    probabilities = []
    for inputs in tqdm(batches, total=total, desc="predict", leave=False, disable=not progress, dynamic_ncols=True):
        logits = model(inputs.to(device, non_blocking=True))
        probabilities.append(logits.float().softmax(dim=1).cpu())
    return torch.cat(probabilities)


def write_predictions(path: Path, names: list[str], probabilities: torch.Tensor, classes: list[str]) -> None:
    """Write the CSV to a temp file beside `path`, then rename: never half a file at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    confidence, predicted = probabilities.max(dim=1)
    rows = zip(names, predicted.tolist(), confidence.tolist(), probabilities.tolist(), strict=True)
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["input", "prediction", "probability", *(f"p_{name}" for name in classes)])
            for name, index, probability, row in rows:
                writer.writerow([name, classes[index], f"{probability:.6g}", *(f"{p:.6g}" for p in row)])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()  # logs and the summary go to stderr
    if args.output.is_dir():
        raise ConfigError(f"--output {args.output} is a folder; give a file name such as predictions.csv")
    if args.output.exists() and not args.overwrite:
        raise ConfigError(f"{args.output} already exists; pass --overwrite to replace it, or choose another --output")

    ckpt_path = resolve_checkpoint_path(args.checkpoint)
    state = load_checkpoint(ckpt_path)
    data_info = state["data_info"]
    classes = [str(name) for name in data_info["classes"]]
    cfg = load_config(base=state["config"], overrides=args.overrides)
    device = resolve_device(cfg.trainer.device)
    batch_size = args.batch_size or cfg.data.batch_size
    # Read every input before the model is built: a bad input fails fast.
{% if cookiecutter.dataset_type == "tabular_csv" %}
    names, features = read_features(args.inputs, data_info)
    batches = features.split(batch_size)  # already in memory: batch by slicing
{% else %}
    images = find_images(args.inputs)
    names = [str(path) for path in images]
    cfg.data.image_size = data_info["image_size"]  # the checkpoint's size, whatever the overrides say
    transform = build_transforms(cfg, data_info["mean"], data_info["std"], train=False)
    # The validation pipeline of training: decode, convert to the saved mode, resize, normalise.
    # Labels are unknown here; 0 is a placeholder. An unreadable file is a DataError naming it.
    dataset = ImageDataset([(str(path), 0) for path in images], open_image, data_info["image_mode"], transform)
    pin_memory = device.type == "cuda"  # lets the host->GPU copy overlap compute
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=cfg.data.num_workers, pin_memory=pin_memory)
    batches = (inputs for inputs, _ in loader)
{% endif %}

    model = build_model(cfg, data_info).to(device)
    load_model_weights(model, state, ckpt_path)
{% if cookiecutter.gpu != "none" %}
    # Plain fp32 here, as in evaluate.py: the numbers must not depend on the GPU's AMP support.
{% endif %}
    total = math.ceil(len(names) / batch_size)
    probabilities = predict_probabilities(model, batches, device, total, show_progress(cfg.trainer.progress_bar))
    write_predictions(args.output, names, probabilities, classes)
    log.info("Predicted %d inputs with %s (epoch %d); wrote %s", len(names), ckpt_path, state["epoch"], args.output)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ConfigError, DataError, CheckpointError) as err:
        print(f"error: {error_message(err)}", file=sys.stderr)
        sys.exit(2)
