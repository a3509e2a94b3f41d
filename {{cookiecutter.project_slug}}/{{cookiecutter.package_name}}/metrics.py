"""metrics.csv, the best-epoch tracker and the progress lines (the running sums are the task's: task.py)."""

import csv
import io
import logging
import time

from .task import EPOCH_FIELDS, MONITORS
from .utils import atomic_write_text

log = logging.getLogger(__name__)

METRIC_FIELDS = ["epoch", *EPOCH_FIELDS, "lr", "time_s"]


def write_metrics(path, rows: list[dict]) -> None:
    """Rewrite metrics.csv from the history (atomically): after a resume it matches the checkpoint. A backbone
    with an lr of its own adds a `backbone_lr` column after `lr` (the head's)."""
    fields = list(METRIC_FIELDS)
    if any("backbone_lr" in row for row in rows):
        fields.insert(fields.index("lr") + 1, "backbone_lr")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


class BestTracker:
    """The monitored metric's best value and the epochs since it last improved (early stopping)."""

    def __init__(self, monitor: str, best: float | None = None, bad_epochs: int = 0):
        if monitor not in MONITORS:
            raise ValueError(f"trainer.monitor={monitor!r} is not one of: {', '.join(MONITORS)}")
        self.monitor = monitor
        self.best = best
        self.bad_epochs = bad_epochs

    def update(self, row: dict) -> bool:
        """True when this epoch is the best so far."""
        value = row[self.monitor]
        if self.best is None or (value > self.best if MONITORS[self.monitor] == "max" else value < self.best):
            self.best = value
            self.bad_epochs = 0
            return True
        self.bad_epochs += 1
        return False


def log_progress(bar, epoch: int, steps: int, loss, sums, start: float) -> None:
    """Loss and speed every `trainer.log_interval` steps: on the bar, or as a log line without one."""
    speed = int(sums.count.item()) / (time.perf_counter() - start)
    bar.set_postfix(loss=f"{loss.item():.4f}", samples_s=f"{speed:.0f}")
    level = logging.DEBUG if not bar.disable else logging.INFO  # with a bar, the console needs no line
    log.log(level, "epoch %d step %d loss %.4f %.0f samples/s", epoch + 1, steps, loss.item(), speed)


def log_epoch(row: dict, epochs: int, improved: bool) -> None:
    metrics = "  ".join(f"{name} {row[name]:.4f}" for name in EPOCH_FIELDS)
    best = "  (best)" if improved else ""
    log.info("epoch %d/%d  %s  lr %.2e  %.1fs%s", row["epoch"], epochs, metrics, row["lr"], row["time_s"], best)
