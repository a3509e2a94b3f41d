"""Running sums that stay on the device, metrics.csv, and the best-epoch tracker."""

import csv
import io
import logging
import math
import time

import torch

from .utils import atomic_write_text

log = logging.getLogger(__name__)

METRIC_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time_s"]


class RunningSums:
    """Summed loss, correct predictions and sample count; read (one host sync) only in `result`."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.count = torch.zeros((), dtype=torch.int64, device=device)

    def add(self, mean_loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        n = targets.shape[0]
        self.loss += mean_loss.detach().double() * n
        self.correct += (logits.argmax(dim=1) == targets).sum()
        self.count += n

    def result(self, what: str) -> dict:
        count = int(self.count.item())
        if count == 0:
            raise RuntimeError(f"the {what} loader produced no samples (is data.batch_size larger than the data?)")
        loss = self.loss.item() / count
        if not math.isfinite(loss):
            raise FloatingPointError(f"{what} loss is {loss}; try a lower optim.lr or trainer.grad_clip_norm")
        return {"loss": loss, "accuracy": self.correct.item() / count, "num_samples": count}


def write_metrics(path, rows: list[dict]) -> None:
    """Rewrite metrics.csv from the history (atomically): after a resume it matches the checkpoint."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


class BestTracker:
    """The monitored metric's best value and the epochs since it last improved (early stopping)."""

    def __init__(self, monitor: str, best: float | None = None, bad_epochs: int = 0):
        if monitor not in ("val_acc", "val_loss"):
            raise ValueError(f"trainer.monitor={monitor!r} is not one of: val_acc, val_loss")
        self.monitor, self.best, self.bad_epochs = monitor, best, bad_epochs

    def update(self, row: dict) -> bool:
        """True when this epoch is the best so far."""
        value = row[self.monitor]
        if self.best is None or (value > self.best if self.monitor == "val_acc" else value < self.best):
            self.best, self.bad_epochs = value, 0
            return True
        self.bad_epochs += 1
        return False


def log_progress(bar, epoch: int, steps: int, loss, sums: RunningSums, start: float) -> None:
    """Loss and speed every `trainer.log_interval` steps: on the bar, or as a log line without one."""
    speed = int(sums.count.item()) / (time.perf_counter() - start)
    bar.set_postfix(loss=f"{loss.item():.4f}", samples_s=f"{speed:.0f}")
    level = logging.DEBUG if not bar.disable else logging.INFO  # with a bar, the console needs no line
    log.log(level, "epoch %d step %d loss %.4f %.0f samples/s", epoch + 1, steps, loss.item(), speed)


def log_epoch(row: dict, epochs: int, improved: bool) -> None:
    log.info(
        "epoch %d/%d  train_loss %.4f  train_acc %.4f  val_loss %.4f  val_acc %.4f  lr %.2e  %.1fs%s",
        row["epoch"], epochs, row["train_loss"], row["train_acc"], row["val_loss"], row["val_acc"],
        row["lr"], row["time_s"], "  (best)" if improved else "",
    )  # fmt: skip
