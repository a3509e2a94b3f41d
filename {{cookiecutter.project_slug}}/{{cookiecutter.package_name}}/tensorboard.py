"""TensorBoard: per-epoch scalars and the model graph in <run_dir>/tensorboard.

    tensorboard --logdir runs        # then open http://localhost:6006

Without the `tensorboard` package training goes on and says so once.
"""

import logging
import warnings

import torch

from .task import EPOCH_FIELDS

log = logging.getLogger(__name__)

# TensorBoard tag -> metrics.csv column: "<metric>/<split>" (task.py's EPOCH_FIELDS), so that each metric's
# chart shows train next to val.
TAGS = {"/".join(reversed(name.split("_", 1))): name for name in EPOCH_FIELDS} | {"lr": "lr"}


class TensorBoardLogger:
    """Call with each epoch's metrics.csv row (and the train stats): scalars at step = epoch."""

    def __init__(self, log_dir, model: torch.nn.Module, loader):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch raises this when the tensorboard package is not installed
            log.warning(
                "the tensorboard package is not installed; training goes on without it. Get it with: "
                "python -m pip install tensorboard"
            )
            self.writer = None
            return
        self.writer = SummaryWriter(str(log_dir))
        try:
            inputs = next(iter(loader))[0]
            # add_graph traces with torch.jit.trace, which newer torch marks deprecated: TensorBoard's
            # business, not something a user of this project can act on.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                self.writer.add_graph(model, inputs[:1].to(next(model.parameters()).device))
        except Exception as err:  # tracing is best effort: some models do not trace
            log.info("TensorBoard graph skipped: the model does not trace (%s)", err.__class__.__name__)

    def __call__(self, row: dict, train: dict) -> None:
        if self.writer is None:
            return
        for tag, key in TAGS.items():
            self.writer.add_scalar(tag, row[key], row["epoch"])
        self.writer.add_scalar("speed/train_samples_per_s", train["samples_per_s"], row["epoch"])
        self.writer.flush()
