"""Training curves: `plot_curves(run_dir)` draws `<run_dir>/metrics.csv` into `<run_dir>/curves.png`.

    python -m {{ cookiecutter.package_name }}.plot runs/baseline

A plot that cannot be drawn (unreadable metrics.csv, unwritable folder) is one warning:
a finished training run never fails over a plot.
"""

import argparse
import csv
import logging
import math
import sys
from pathlib import Path

# The Agg canvas directly, not pyplot: no GUI backend (fine on headless servers), no global figure state.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .task import CURVE
from .utils import atomic_write, setup_logging

# Not __name__: under `python -m` that is "__main__", outside the package logger's handlers.
log = logging.getLogger(f"{__package__}.plot")

COLUMNS = ["epoch", "train_loss", f"train_{CURVE[0]}", "val_loss", f"val_{CURVE[0]}"]


def read_metrics(path: Path) -> dict[str, list[float]]:
    """metrics.csv as one list of floats per column (a missing or blank cell is nan)."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    try:
        return {key: [float(row[key]) if row.get(key) else math.nan for row in rows] for key in COLUMNS}
    except ValueError as err:
        raise ValueError(f"{path} has a value that is not a number ({err})") from None


def plot_curves(run_dir) -> Path | None:
    """Loss and the task's metric (task.py's CURVE) per epoch, train vs val, as `<run_dir>/curves.png`; None (and a
    warning) if not drawn."""
    run_dir = Path(run_dir)
    try:
        metrics = read_metrics(run_dir / "metrics.csv")
    except (OSError, ValueError) as err:
        log.warning("curves.png not drawn: %s", err)
        return None
    if not metrics["epoch"]:
        log.warning("curves.png not drawn: %s has no epochs yet", run_dir / "metrics.csv")
        return None

    figure = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, metric_axes = figure.subplots(1, 2)
    metric, metric_label, limits = CURVE
    for axes, name, label in ((loss_axes, "loss", "loss"), (metric_axes, metric, metric_label)):
        # Markers: a one-epoch run is a single point, which a bare line would not show.
        axes.plot(metrics["epoch"], metrics[f"train_{name}"], marker="o", label="train")
        axes.plot(metrics["epoch"], metrics[f"val_{name}"], marker="o", label="val")
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        axes.grid(alpha=0.3)
        axes.legend()
    if limits is not None:
        metric_axes.set_ylim(*limits)
    loss_axes.set_title("loss per epoch")
    metric_axes.set_title(f"{metric_label} per epoch")
    figure.suptitle(f"run {run_dir.resolve().name}")

    path = run_dir / "curves.png"
    try:
        atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=100))
    except OSError as err:
        log.warning("curves.png not drawn: cannot write %s (%s)", path, err)
        return None
    log.info("Curves: %s", path)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Draw <run_dir>/metrics.csv into <run_dir>/curves.png.")
    parser.add_argument("run_dir", type=Path, help="a run dir written by train.py")
    args = parser.parse_args(argv)
    setup_logging()
    metrics = args.run_dir / "metrics.csv"
    if not metrics.is_file():
        print(f"error: {metrics} does not exist (give a run dir written by train.py)", file=sys.stderr)
        return 2
    return 0 if plot_curves(args.run_dir) else 1  # 1: not drawn; the warning says why


if __name__ == "__main__":
    sys.exit(main())
