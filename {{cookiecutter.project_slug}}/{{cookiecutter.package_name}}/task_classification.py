"""Classification: one class per sample. What the task decides lives here, and only here: the head's size,
the loss, the running metrics of an epoch, metrics.csv's columns, the evaluation report and predict.py's
columns. The loop, the checkpoints and the trackers call these by name and know nothing of classes.
"""

import csv
import io
import json
import logging
import math
from pathlib import Path

import torch
import torch.nn as nn

from .confusion import class_scores, confusion_counts, confusion_csv, confusion_image
from .report_images import write_mistakes  # images
from .utils import atomic_write, atomic_write_text

log = logging.getLogger(__name__)

TASK = "classification"  # saved in every checkpoint: evaluate/predict/export refuse one of another task
MONITORS = {"val_acc": "max", "val_loss": "min", "val_macro_f1": "max"}  # trainer.monitor: which way is better
EPOCH_FIELDS = ["train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1"]  # metrics.csv, per epoch
CURVE = ("acc", "accuracy", (-0.02, 1.02))  # curves.png's second panel: train_acc and val_acc, its range
ECE_BINS = 15
OUTPUTS = "classes"  # what the head's outputs are, in messages
MAX_PROBABILITY_COLUMNS = 20  # the report's predictions.csv gets p_<class> columns up to this many classes
# Keys of other tasks, and why they are not this one's: named when a config sets them.
OTHER_TASKS_KEYS = {"trainer.loss": "classification trains with cross entropy (see trainer.label_smoothing)"}


def output_names(data_info: dict) -> list[str]:
    """What each of the head's outputs stands for: the classes (a checkpoint of another task: none)."""
    return [str(name) for name in data_info.get("classes", [])]


def describe(data_info: dict) -> str:
    return f"{len(data_info['classes'])} classes"


def build_criterion(cfg, data_info: dict) -> nn.Module:
    """Cross entropy, with trainer.class_weights and trainer.label_smoothing."""
    weights = class_weights(cfg, data_info)  # None unless trainer.class_weights=balanced
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.trainer.label_smoothing)


def class_weights(cfg, data_info: dict) -> torch.Tensor | None:
    """`trainer.class_weights=balanced`: n / (classes x count) per class, from the train split's counts (what
    scikit-learn calls balanced), so that every class weighs the same in the loss; `none`: None."""
    if cfg.trainer.class_weights == "none":
        return None
    counts = torch.tensor(data_info["class_counts"], dtype=torch.float32)
    weights = counts.sum() / (len(counts) * counts.clamp_min(1))
    rounded = [round(weight, 4) for weight in weights.tolist()]
    log.info("class weights from the train counts %s: %s", counts.int().tolist(), rounded)
    return weights


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
        self.confusion = torch.zeros((num_classes, num_classes), dtype=torch.int64, device=device)

    @classmethod
    def for_validation(cls, device, data_info: dict | None) -> "RunningSums":
        return cls(device, len(data_info["classes"]) if data_info else 0)  # the confusion matrix too: macro F1

    def totals(self) -> dict:
        """Every sum by name, as a mid-epoch checkpoint keeps them."""
        return {"loss": self.loss, "weight": self.weight, "correct": self.correct, "count": self.count} | (
            {"confusion": self.confusion} if self.confusion.numel() else {}
        )

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
        if self.confusion.numel():
            self.confusion += confusion_counts(targets, predictions, len(self.confusion))

    def result(self, what: str) -> dict:
        count = int(self.count.item())
        if count == 0:
            raise RuntimeError(f"the {what} loader produced no samples (is data.batch_size larger than the data?)")
        loss = self.loss.item() / self.weight.item()
        if not math.isfinite(loss):
            raise FloatingPointError(f"{what} loss is {loss}; try a lower optim.lr or trainer.grad_clip_norm")
        result = {"loss": loss, "accuracy": self.correct.item() / count, "num_samples": count}
        if self.confusion.numel():
            result["macro_f1"] = class_scores(self.confusion.cpu())["macro_f1"]
        return result


def epoch_row(train: dict, val: dict, data_info: dict) -> dict:
    """An epoch's metrics.csv columns (EPOCH_FIELDS) from train_one_epoch's and evaluate's results."""
    row = {"train_loss": train["loss"], "train_acc": train["accuracy"], "val_loss": val["loss"]}
    return row | {"val_acc": val["accuracy"], "val_macro_f1": val["macro_f1"]}


def batch_outputs(logits: torch.Tensor) -> torch.Tensor:
    """What the reports and predict.py keep of a batch's logits: class probabilities."""
    return logits.float().softmax(dim=1)


def expected_calibration_error(confidence: torch.Tensor, correct: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Sum over equal-width confidence bins (lo, hi] of |accuracy - mean confidence| x share of samples."""
    which = (confidence.double() * bins).ceil().long().clamp(1, bins) - 1
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            gap = correct[in_bin].double().mean() - confidence[in_bin].double().mean()
            ece += gap.abs().item() * in_bin.sum().item() / len(confidence)
    return ece


def build_report(outputs: dict, data_info: dict) -> dict:
    """The numbers: loss, accuracy, top-5 accuracy (more than 5 classes), macro and weighted F1,
    per-class precision/recall/F1/support, the confusion matrix and the expected calibration error."""
    probs, target = outputs["output"], outputs["target"]
    n, num_classes = probs.shape
    confidence, prediction = probs.max(dim=1)
    confusion = confusion_counts(target, prediction, num_classes)
    scores = class_scores(confusion)
    report = {
        "loss": outputs["loss_sum"] / outputs["weight_sum"],  # a weighted mean (class weights) as validation's
        "accuracy": (prediction == target).double().mean().item(),
        "num_samples": n,
    }
    if num_classes > 5:
        top5 = probs.topk(5, dim=1).indices
        report["top5_accuracy"] = (top5 == target[:, None]).any(dim=1).double().mean().item()
    report |= {"macro_f1": scores["macro_f1"], "weighted_f1": scores["weighted_f1"]}
    report["per_class"] = {
        name: {key: scores[key][i].item() for key in ("precision", "recall", "f1", "support")}
        for i, name in enumerate(data_info["classes"])
    }
    report["confusion_matrix"] = confusion.tolist()
    report["ece"] = expected_calibration_error(confidence, prediction == target)
    return report


def summary(report: dict) -> str:
    """The report in one line, for the end of training."""
    return f"accuracy {report['accuracy']:.4f}  macro F1 {report['macro_f1']:.4f}  ECE {report['ece']:.4f}"


def format_report(report: dict, split: str) -> str:
    """A readable table of the report's numbers (for stderr)."""
    head = f"{split}: {report['num_samples']} samples  loss {report['loss']:.4f}  accuracy {report['accuracy']:.4f}"
    if "top5_accuracy" in report:
        head += f"  top-5 {report['top5_accuracy']:.4f}"
    head += f"  macro F1 {report['macro_f1']:.4f}  weighted F1 {report['weighted_f1']:.4f}  ECE {report['ece']:.4f}"
    width = max(12, *(len(name) for name in report["per_class"]))
    lines = [head, f"{'class':<{width}}  precision  recall      f1  support"]
    for name, s in report["per_class"].items():
        lines.append(f"{name:<{width}}  {s['precision']:9.4f}  {s['recall']:6.4f}  {s['f1']:6.4f}  {s['support']:7d}")
    return "\n".join(lines)


def write_report(report: dict, outputs: dict, dataset, data_info: dict, out_dir: Path) -> None:
    """report.json, confusion_matrix.csv/.png and predictions.csv (and mistakes.png) in `out_dir`."""
    classes = [str(name) for name in data_info["classes"]]
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    confusion = torch.tensor(report["confusion_matrix"])
    atomic_write_text(out_dir / "confusion_matrix.csv", csv_text(confusion_csv(confusion, classes)))
    picture = confusion_image(confusion, classes)
    atomic_write(out_dir / "confusion_matrix.png", lambda file: picture.save(file, format="PNG"))

    probs, target = outputs["output"], outputs["target"]
    confidence, prediction = probs.max(dim=1)
    with_probs = len(classes) <= MAX_PROBABILITY_COLUMNS
    ids = getattr(dataset, "id_columns", [])  # values that name each sample (e.g. a CSV's id columns), to join on
    source = getattr(dataset, "source", str)  # `file:line`; a dataset of your own may not say: the index
    header = ["index", "source", *ids, "target", "prediction", "confidence"]
    rows = [header + [f"p_{c}" for c in classes] * with_probs]
    for i, index in enumerate(outputs["index"].tolist()):
        row = [index, source(index), *(dataset.ids(index) if ids else [])]
        row += [classes[target[i]], classes[prediction[i]], f"{confidence[i]:.6f}"]
        rows.append(row + ([f"{p:.6f}" for p in probs[i].tolist()] if with_probs else []))
    atomic_write_text(out_dir / "predictions.csv", csv_text(rows))
    write_mistakes(outputs, dataset, classes, out_dir)  # images


def prediction_table(outputs: torch.Tensor, data_info: dict) -> tuple[list[str], list[list]]:
    """predict.py's columns after the input's: the class, its probability and one p_<class> per class."""
    classes = [str(name) for name in data_info["classes"]]
    confidence, predicted = outputs.max(dim=1)
    rows = zip(predicted.tolist(), confidence.tolist(), outputs.tolist(), strict=True)
    cells = [[classes[index], f"{probability:.6g}", *(f"{p:.6g}" for p in row)] for index, probability, row in rows]
    return ["prediction", "probability", *(f"p_{name}" for name in classes)], cells


def csv_text(rows: list[list]) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue()
