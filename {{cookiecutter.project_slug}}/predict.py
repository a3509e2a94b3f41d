"""Predict new inputs with a trained checkpoint or an exported model; one CSV row per input.

Examples:
    python predict.py runs/baseline INPUT...                     # writes predictions.csv here
    python predict.py runs/baseline/checkpoints/best.pt INPUT... --output preds.csv
    python predict.py runs/baseline INPUT... trainer.device=cpu --batch-size 128
    python predict.py runs/baseline/export/best.onnx INPUT...    # onnxruntime on the CPU (export.py)

What an INPUT is depends on the data type: see INPUT in `python predict.py --help`. Inputs are
preprocessed as validation data was, with the model's saved preprocessing (its data_info), never
the current config's; key=value overrides change the rest (trainer.device, ...). A run dir means its
best.pt (the log names the file used). The CSV has the columns input (then any columns that name the
input's row), then the task's (task.py's prediction_table).
"""

import argparse
import csv
import io
import logging
import math
import os
import re
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint, load_model_weights, resolve_checkpoint_path
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.data.dataset import PREDICT_INPUTS, predict_inputs
from {{ cookiecutter.package_name }}.deploy import FORMATS, load_exported
from {{ cookiecutter.package_name }}.device import setup_device
from {{ cookiecutter.package_name }}.errors import ConfigError, run_main
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.task import batch_outputs, prediction_table
from {{ cookiecutter.package_name }}.utils import atomic_write_text, setup_logging, show_progress

log = logging.getLogger("{{ cookiecutter.package_name }}.predict")

OVERRIDE = re.compile(r"[A-Za-z_][\w.]*=")  # `key=value`, as train.py and evaluate.py take them


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    exported = ", ".join(fmt.suffix for fmt in FORMATS.values())
    model_help = f"a checkpoint (.pt), a run dir (its best.pt, else last.pt), or a file export.py wrote ({exported})"
    parser.add_argument("model", type=Path, help=model_help)
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help=f"{PREDICT_INPUTS}; key=value config overrides may be mixed in"
    )
    parser.add_argument("--output", type=Path, default=Path("predictions.csv"), help="default: %(default)s")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--batch-size", type=positive_int, help="default: the checkpoint's data.batch_size")
    args = parser.parse_intermixed_args(argv)  # options anywhere
    # Inputs and key=value overrides share the positional list; an existing path is always an input.
    args.overrides = [item for item in args.inputs if OVERRIDE.match(item) and not os.path.exists(item)]
    args.inputs = [item for item in args.inputs if not (OVERRIDE.match(item) and not os.path.exists(item))]
    return args


@torch.inference_mode()
def predict_outputs(model, batches, device, total: int, progress: bool) -> torch.Tensor:
    """The task's outputs (task.py's batch_outputs) on the CPU, one batch at a time; `model` in eval mode."""
    outputs = []
    for inputs in tqdm(batches, total=total, desc="predict", leave=False, disable=not progress, dynamic_ncols=True):
        outputs.append(batch_outputs(model(inputs.to(device))).cpu())
    return torch.cat(outputs)


def write_predictions(path: Path, names: list, outputs: torch.Tensor, data_info: dict) -> None:
    """Write the CSV beside `path`, then rename: never half a file at `path`. A name is the input's, or a
    dict of "input" and the values that name the row (columns after input)."""
    names = [name if isinstance(name, dict) else {"input": name} for name in names]
    keys = list(names[0]) if names else ["input"]
    header, cells = prediction_table(outputs, data_info)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow([*keys, *header])
    writer.writerows([*name.values(), *row] for name, row in zip(names, cells, strict=True))
    atomic_write_text(path, text.getvalue())


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()  # logs and the summary go to stderr
    if args.output.is_dir():
        raise ConfigError(f"--output {args.output} is a folder; give a file name such as predictions.csv")
    if args.output.exists() and not args.overwrite:
        raise ConfigError(f"{args.output} already exists; pass --overwrite to replace it, or choose another --output")

    if any(args.model.name.endswith(fmt.suffix) for fmt in FORMATS.values()):
        model, state = load_exported(args.model)  # its metadata: the checkpoint's config, data_info, epoch
        model_path = args.model
    else:
        model_path = resolve_checkpoint_path(args.model, prefer="best.pt")  # a run dir: its best epoch
        state = load_checkpoint(model_path)
        model = None
    data_info = state["data_info"]
    cfg = load_config(base=state["config"], overrides=args.overrides)
    # setup_device: the global flags (matmul precision) evaluate.py and validation run under, for the same numbers
    device = setup_device(cfg) if model is None else torch.device("cpu")
    batch_size = args.batch_size or cfg.data.batch_size
    # Read every input before the model is built: a bad input fails fast.
    names, batches = predict_inputs(args.inputs, data_info, cfg, batch_size)

    if model is None:
        model = build_model(cfg, data_info).to(device)
        load_model_weights(model, state, model_path)
        model.eval()
    # Plain fp32: the outputs do not depend on mixed-precision support.
    total = math.ceil(len(names) / batch_size)
    outputs = predict_outputs(model, batches, device, total, show_progress(cfg.trainer.progress_bar))
    write_predictions(args.output, names, outputs, data_info)
    log.info("Predicted %d inputs with %s (epoch %d); wrote %s", len(names), model_path, state["epoch"], args.output)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
