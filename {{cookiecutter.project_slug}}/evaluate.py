"""Evaluate a checkpoint on the validation or test split: a JSON report on stdout, a table on stderr, files.

Examples:
    python evaluate.py runs/baseline/checkpoints/best.pt
    python evaluate.py runs/baseline --split test
    python evaluate.py runs/baseline data.root=/data/other data.batch_size=256

A run dir means its best.pt (else its last.pt; the log names the file). The checkpoint's own config and data
info (normalisation, the task's labels) are used; key=value overrides change the rest (data location, batch
size, device). The report (the loss and the task's numbers: task.py's build_report) is also written, with the
task's other files (predictions.csv among them), under <run_dir>/eval/<split>/.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint, load_model_weights, resolve_checkpoint_path, run_dir_of
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.data import DataError, build_datasets, build_test_set
from {{ cookiecutter.package_name }}.device import setup_device
from {{ cookiecutter.package_name }}.errors import run_main
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.report import evaluate_split
from {{ cookiecutter.package_name }}.task import build_criterion, format_report
from {{ cookiecutter.package_name }}.utils import setup_logging

log = logging.getLogger("{{ cookiecutter.package_name }}.evaluate")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a .pt file, or a run dir (its best.pt, else last.pt)")
    parser.add_argument("--split", choices=["val", "test"], default="val", help="the split to evaluate (default: val)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    args = parser.parse_intermixed_args(argv)
    setup_logging()  # logs go to stderr; stdout carries only the JSON

    path = resolve_checkpoint_path(args.checkpoint, prefer="best.pt")  # a run dir: its best epoch, as predict.py
    state = load_checkpoint(path)
    cfg = load_config(base=state["config"], overrides=args.overrides)
    device = setup_device(cfg)
    data_info = state["data_info"]
    # Only the split asked for is read (val: built as training built it, held out of train if need be).
    dataset = build_datasets(cfg, data_info)[1] if args.split == "val" else build_test_set(cfg, data_info)
    if dataset is None:
        raise DataError(f"--split test: data.root={cfg.data.root!r} has no test split (see the README's Data)")
    model = build_model(cfg, data_info).to(device)
    load_model_weights(model, state, path)
    out_dir = run_dir_of(path) / "eval" / args.split  # a checkpoint outside a run dir: eval/ beside it
    # The criterion and forward pass of training's validation: on val the numbers match its metrics.csv.
    criterion = build_criterion(cfg, data_info).to(device)  # the loss as training computed it
    report = evaluate_split(model, criterion, dataset, data_info, cfg, device, out_dir)
    log.info("%s\nfiles in %s", format_report(report, args.split), out_dir)
    print(json.dumps({**report, "split": args.split, "epoch": state["epoch"], "checkpoint": str(args.checkpoint)}))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
