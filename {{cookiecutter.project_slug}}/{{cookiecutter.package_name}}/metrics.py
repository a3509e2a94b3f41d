"""Running sums that stay on the device, metrics.csv, and the best-epoch tracker."""

import csv
import io
import logging
import math
import time

import torch

from .utils import atomic_write_text

log = logging.getLogger(__name__)

METRIC_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr", "time_s"]
MONITORS = {"val_acc": "max", "val_loss": "min", "val_macro_f1": "max"}  # trainer.monitor: which way is better


def confusion_counts(targets: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) int64 counts, rows the true class, columns the predicted one. A one-hot product, not
    bincount: bincount reads its input's max on the host (on an accelerator, a sync)."""
    true = torch.nn.functional.one_hot(targets, num_classes).float()
    predicted = torch.nn.functional.one_hot(predictions, num_classes).float()
    return (true.T @ predicted).round().long()  # exact: counts of one batch are far below 2**24


def class_scores(confusion: torch.Tensor) -> dict:
    """Per-class precision, recall, F1 and support of a confusion matrix (0 where undefined, as
    scikit-learn's zero_division=0), and their macro (plain) and weighted (by support) F1."""
    confusion = confusion.double()
    hits = confusion.diagonal()
    support = confusion.sum(1)
    predicted = confusion.sum(0)
    precision = torch.where(predicted > 0, hits / predicted.clamp_min(1), 0.0)
    recall = torch.where(support > 0, hits / support.clamp_min(1), 0.0)
    total = precision + recall
    f1 = torch.where(total > 0, 2 * precision * recall / total.clamp_min(1e-300), 0.0)
    weighted = (f1 * support).sum() / support.sum().clamp_min(1)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support.long(),
        "macro_f1": f1.mean().item(),
        "weighted_f1": weighted.item(),
    }


def mean_divisor(criterion, targets: torch.Tensor):
    """What `criterion`'s mean divides the batch's summed loss by: the targets' summed class weights
    (trainer.class_weights), else their number. Summing mean x divisor and the divisors over batches
    gives the mean of the whole set, the same at every batch size."""
    weight = getattr(criterion, "weight", None)
    if weight is None or targets.ndim != 1:  # class probabilities (mixup, cutmix): a plain mean over the batch
        return targets.shape[0]
    return weight[targets].double().sum()


class RunningSums:
    """Summed loss, correct predictions and sample count (and with `num_classes` the confusion
    matrix, for macro F1); read (one host sync) only in `result`."""

    def __init__(self, device: torch.device, num_classes: int = 0):
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.weight = torch.zeros((), dtype=torch.float64, device=device)  # what the mean loss divides by
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.count = torch.zeros((), dtype=torch.int64, device=device)
        self.num_classes = num_classes
        self.confusion = torch.zeros((num_classes, num_classes), dtype=torch.int64, device=device)

    def totals(self) -> dict:
        """The sums by name, as a mid-epoch checkpoint keeps them."""
        return {"loss": self.loss, "weight": self.weight, "correct": self.correct, "count": self.count}

    def state(self) -> dict:
        """The sums so far, for a mid-epoch checkpoint."""
        return {name: total.cpu() for name, total in self.totals().items()}

    def restored(self, state: dict) -> "RunningSums":
        """These sums continued from `state` (a resumed epoch's first part); {}: from zero."""
        for name, total in self.totals().items() if state else ():
            total.copy_(state.get(name, state["count"]))  # no weight saved: every sample weighed 1
        return self

    def add(self, mean_loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor, criterion=None) -> None:
        """One batch: `mean_loss` is `criterion`'s mean over it, which divides the summed loss by `mean_divisor`."""
        n = targets.shape[0]
        divisor = mean_divisor(criterion, targets)
        self.loss += mean_loss.detach().double() * divisor
        self.weight += divisor
        if targets.ndim == 2:  # mixed (mixup/cutmix) class probabilities: accuracy against the dominant class
            targets = targets.argmax(dim=1)
        predictions = logits.argmax(dim=1)
        self.correct += (predictions == targets).sum()
        self.count += n
        if self.num_classes:
            self.confusion += confusion_counts(targets, predictions, self.num_classes)

    def result(self, what: str) -> dict:
        count = int(self.count.item())
        if count == 0:
            raise RuntimeError(f"the {what} loader produced no samples (is data.batch_size larger than the data?)")
        loss = self.loss.item() / self.weight.item()
        if not math.isfinite(loss):
            raise FloatingPointError(f"{what} loss is {loss}; try a lower optim.lr or trainer.grad_clip_norm")
        result = {"loss": loss, "accuracy": self.correct.item() / count, "num_samples": count}
        if self.num_classes:
            result["macro_f1"] = class_scores(self.confusion.cpu())["macro_f1"]
        return result


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


def log_progress(bar, epoch: int, steps: int, loss, sums: RunningSums, start: float) -> None:
    """Loss and speed every `trainer.log_interval` steps: on the bar, or as a log line without one."""
    speed = int(sums.count.item()) / (time.perf_counter() - start)
    bar.set_postfix(loss=f"{loss.item():.4f}", samples_s=f"{speed:.0f}")
    level = logging.DEBUG if not bar.disable else logging.INFO  # with a bar, the console needs no line
    log.log(level, "epoch %d step %d loss %.4f %.0f samples/s", epoch + 1, steps, loss.item(), speed)


def log_epoch(row: dict, epochs: int, improved: bool) -> None:
    log.info(
        "epoch %d/%d  train_loss %.4f  train_acc %.4f  val_loss %.4f  val_acc %.4f  val_f1 %.4f  lr %.2e  %.1fs%s",
        row["epoch"],
        epochs,
        row["train_loss"],
        row["train_acc"],
        row["val_loss"],
        row["val_acc"],
        row["val_macro_f1"],
        row["lr"],
        row["time_s"],
        "  (best)" if improved else "",
    )
