"""Optional TensorBoard logging: per-epoch scalars and the model graph, written by rank 0.

    tensorboard --logdir runs        # then open http://localhost:6006

The `tensorboard` package is an optional extra; without it training goes on and says so once.
"""

import logging

import torch

log = logging.getLogger(__name__)

# TensorBoard tag -> metrics.csv column; "loss/..." and "accuracy/..." chart train next to val.
TAGS = {
    "loss/train": "train_loss",
    "loss/val": "val_loss",
    "accuracy/train": "train_acc",
    "accuracy/val": "val_acc",
    "lr": "lr",
}


def open_writer(log_dir):
    """A SummaryWriter for `log_dir`, or None (with one clear line) when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises this when the tensorboard package is not installed
        log.warning(
            "trainer.tensorboard is on but the tensorboard package is not installed; training goes on "
            "without it. Get it with: python -m pip install tensorboard  (or: pip install -e '.[tensorboard]')"
        )
        return None
    return SummaryWriter(str(log_dir))


def add_graph(writer, model: torch.nn.Module, inputs: torch.Tensor) -> None:
    """The model graph, traced on one batch; skipped with a note where tracing fails."""
    try:
        writer.add_graph(model, inputs[:1])
    except Exception as err:  # tracing is best effort: some models do not trace
        log.info("TensorBoard graph skipped: the model does not trace (%s)", err.__class__.__name__)


def add_epoch(writer, row: dict, samples_per_s: float) -> None:
    """One epoch's metrics.csv row, plus training speed, at step = epoch."""
    for tag, key in TAGS.items():
        writer.add_scalar(tag, row[key], row["epoch"])
    writer.add_scalar("speed/train_samples_per_s", samples_per_s, row["epoch"])
    writer.flush()
