"""Evaluate a checkpoint on the validation split; print one JSON object on stdout.

Examples:
    python evaluate.py runs/baseline/checkpoints/best.pt
    python evaluate.py runs/baseline data.root=/data/other data.batch_size=256

The checkpoint's own config and data info (classes, normalisation) are used;
key=value overrides change the rest (data location, batch size, device).
"""

import argparse
import json
import sys
from pathlib import Path

import torch.nn as nn

from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint, load_model_weights
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.device import setup_device
from {{ cookiecutter.package_name }}.engine import evaluate
from {{ cookiecutter.package_name }}.errors import run_main
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.utils import setup_logging


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a .pt file, or a run dir (uses its last.pt)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    args = parser.parse_intermixed_args(argv)
    setup_logging()  # logs go to stderr; stdout carries only the JSON

    state = load_checkpoint(args.checkpoint)
    cfg = load_config(base=state["config"], overrides=args.overrides)
    device = setup_device(cfg)
    _, val_loader, data_info = build_dataloaders(cfg, state["data_info"], device)
    model = build_model(cfg, data_info).to(device)
    load_model_weights(model, state, args.checkpoint)
    # The same criterion and evaluate() as training's validation: the numbers match its metrics.csv.
    metrics = evaluate(model, nn.CrossEntropyLoss(), val_loader, device, cfg)
    result = {**metrics, "epoch": state["epoch"], "checkpoint": str(args.checkpoint)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
