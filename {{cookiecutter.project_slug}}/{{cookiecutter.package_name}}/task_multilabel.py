"""Multi-label: any number of labels (tags) per sample, each a yes or no. What the task decides lives here, and
only here: the loss, the running metrics of an epoch, each label's decision threshold, metrics.csv's columns, the
evaluation report and predict.py's columns. The loop, the checkpoints and the trackers call these by name.

The model gives one logit per label; its sigmoid is the label's score. Validation keeps, per label, a histogram of
the scores of positives and of negatives over BINS equal-width bins (counts: parts of the data add up to exactly
the whole's): mAP and, per label, the threshold that maximises F1 come from them. Each epoch's thresholds are
saved with its checkpoints (`data_info["thresholds"]`); the reports, predict.py and an exported model apply them,
never tune them. The reports compute their numbers from every score.
"""

import csv
import io
import json
import logging
import math
from pathlib import Path

import torch
import torch.nn as nn

from .utils import atomic_write_text

log = logging.getLogger(__name__)

TASK = "multilabel"  # saved in every checkpoint: evaluate/predict/export refuse one of another task
MONITORS = {"val_map": "max", "val_micro_f1": "max", "val_macro_f1": "max", "val_loss": "min"}  # trainer.monitor
EPOCH_FIELDS = ["train_loss", "train_map", "val_loss", "val_map", "val_micro_f1", "val_macro_f1"]  # metrics.csv
CURVE = ("map", "mAP", (-0.02, 1.02))  # curves.png's second panel: train_map and val_map, its range
OUTPUTS = "labels"  # what the head's outputs are, in messages
BINS = 1000  # score bins of the validation histograms: thresholds are multiples of 1 / BINS
DEFAULT_THRESHOLD = 0.5  # a label without positives in val, or a checkpoint saved before any validation
# Keys of other tasks, and why they are not this one's: named when a config sets them.
OTHER_TASKS_KEYS = {
    "trainer.label_smoothing": "each label is a yes or no of its own, learned with BCEWithLogitsLoss",
    "trainer.loss": "multi-label training uses BCEWithLogitsLoss (trainer.class_weights weighs rare labels up)",
}


def output_names(data_info: dict) -> list[str]:
    """What each of the head's outputs stands for: the labels (a checkpoint of another task: none)."""
    return [str(name) for name in data_info.get("labels", [])]


def describe(data_info: dict) -> str:
    names = output_names(data_info)
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f"{len(names)} label{'s' * (len(names) != 1)} ({shown})"


def thresholds_of(data_info: dict) -> torch.Tensor:
    """float64 per label: a score at or above it predicts the label (the last validation's, else 0.5)."""
    saved = data_info.get("thresholds") or [DEFAULT_THRESHOLD] * len(data_info["labels"])
    return torch.tensor(saved, dtype=torch.float64)


def build_criterion(cfg, data_info: dict) -> nn.Module:
    """BCEWithLogitsLoss: a sigmoid and a binary log loss per label, with `pos_weight` by trainer.class_weights."""
    return nn.BCEWithLogitsLoss(pos_weight=pos_weight(cfg, data_info))


def pos_weight(cfg, data_info: dict) -> torch.Tensor | None:
    """`trainer.class_weights=balanced`: per label, its train negatives / positives, so that the few positives of a
    rare label weigh as much in the loss as its many negatives; `none`: None."""
    if cfg.trainer.class_weights == "none":
        return None
    positives = torch.tensor(data_info["label_counts"], dtype=torch.float64)
    weights = ((data_info["train_samples"] - positives) / positives.clamp_min(1)).float()
    rounded = [round(weight, 4) for weight in weights.tolist()]
    log.info("pos_weight (negatives / positives) from the train positives %s: %s", positives.int().tolist(), rounded)
    return weights


def mean_divisor(criterion, targets: torch.Tensor):
    """What `criterion`'s mean divides the batch's summed loss by: every label of every sample."""
    return targets.numel()


def histograms(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """int64 (2, labels, BINS): per label, how many positives (row 0) and negatives (row 1) score in each bin
    [b / BINS, (b + 1) / BINS) (the last bin takes 1.0 too)."""
    width = scores.shape[1]
    bins = (scores.double() * BINS).floor().long().clamp_(0, BINS - 1)
    negative = (targets < 0.5).long()
    index = (negative * width + torch.arange(width, device=scores.device)) * BINS + bins
    return torch.bincount(index.flatten(), minlength=2 * width * BINS).view(2, width, BINS)


def histogram_scores(hist: torch.Tensor) -> dict:
    """From histograms (2, labels, BINS), per label: the average precision (NaN without positives), as scikit-learn's
    `average_precision_score` computes it on the scores floored to the bins; the threshold that maximises F1 (ties:
    the lower one; without positives: DEFAULT_THRESHOLD) and the true and false positives there."""
    hist = hist.double().cpu()
    # Predicting positive from bin b up: the positives and negatives scoring in bin b or above.
    tp, fp = (hist[k].flip(-1).cumsum(-1).flip(-1) for k in (0, 1))
    positives = tp[:, 0]
    precision = tp / (tp + fp).clamp_min(1)
    ap = (hist[0] * precision).sum(-1) / positives.clamp_min(1)  # each bin's positives add their share of recall
    ap = torch.where(positives > 0, ap, torch.nan)
    f1 = 2 * tp / (tp + fp + positives[:, None]).clamp_min(1)
    best = f1.argmax(-1)  # the first maximum along increasing bins: of tied thresholds, the lower
    at = torch.where(positives > 0, best, round(DEFAULT_THRESHOLD * BINS))
    rows = torch.arange(len(at))
    return {"ap": ap, "thresholds": at.double() / BINS, "tp": tp[rows, at], "fp": fp[rows, at]}


def f1_scores(tp: torch.Tensor, fp: torch.Tensor, positives: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """(micro F1, macro F1, per-label F1) from per-label counts; a label with nothing to count scores 0 (as
    scikit-learn's zero_division=0)."""
    per_label = 2 * tp / (tp + fp + positives).clamp_min(1)
    micro = 2 * tp.sum() / (tp.sum() + fp.sum() + positives.sum()).clamp_min(1)
    return micro.item(), per_label.mean().item(), per_label


def mean_ap(ap: torch.Tensor) -> float:
    """The mean over the labels that have positives (NaN when none has): never a 0 for an undefined AP."""
    defined = ap[~ap.isnan()]
    return defined.mean().item() if len(defined) else math.nan


class RunningSums:
    """Summed loss and sample count, and per label the score histograms of positives and negatives (int64), on
    the device; read (one host sync) only in `result`. Every total is a sum: parts of the data add up exactly."""

    def __init__(self, device: torch.device, data_info: dict | None = None):
        width = len(data_info["labels"]) if data_info else 0  # 0: set by the first batch
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.weight = torch.zeros((), dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.int64, device=device)
        self.hist = torch.zeros((2, width, BINS), dtype=torch.int64, device=device)

    @classmethod
    def for_validation(cls, device, data_info: dict | None) -> "RunningSums":
        return cls(device, data_info)

    def totals(self) -> dict:
        """Every sum by name, as a mid-epoch checkpoint keeps them."""
        return {"loss": self.loss, "weight": self.weight, "count": self.count, "hist": self.hist}

    def state(self) -> dict:
        return {name: total.cpu() for name, total in self.totals().items()}

    def restored(self, state: dict) -> "RunningSums":
        """These sums continued from `state` (a resumed epoch's first part); {}: from zero."""
        for name, total in self.totals().items() if state else ():
            setattr(self, name, state[name].to(total.device, total.dtype, copy=True))
        return self

    def add(self, mean_loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor, criterion=None) -> None:
        self.loss += mean_loss.detach().double() * targets.numel()
        self.weight += targets.numel()
        self.count += targets.shape[0]
        if not self.hist.shape[1]:
            self.hist = torch.zeros((2, targets.shape[1], BINS), dtype=torch.int64, device=targets.device)
        self.hist += histograms(batch_outputs(logits.detach()), targets)

    def result(self, what: str) -> dict:
        count = int(self.count.item())
        if count == 0:
            raise RuntimeError(f"the {what} loader produced no samples (is data.batch_size larger than the data?)")
        loss = self.loss.item() / self.weight.item()
        if not math.isfinite(loss):
            raise FloatingPointError(f"{what} loss is {loss}; try a lower optim.lr or trainer.grad_clip_norm")
        scores = histogram_scores(self.hist)
        micro, macro, _ = f1_scores(scores["tp"], scores["fp"], self.hist[0].sum(-1).double().cpu())
        result = {"loss": loss, "map": mean_ap(scores["ap"]), "micro_f1": micro, "macro_f1": macro}
        return result | {"num_samples": count, "thresholds": scores["thresholds"].tolist(), "ap": scores["ap"]}


def epoch_row(train: dict, val: dict, data_info: dict) -> dict:
    """An epoch's metrics.csv columns (EPOCH_FIELDS). Validation's thresholds become `data_info["thresholds"]`,
    which the epoch's checkpoints then save with the weights they were tuned for."""
    data_info["thresholds"] = list(val["thresholds"])
    row = {"train_loss": train["loss"], "train_map": train["map"], "val_loss": val["loss"], "val_map": val["map"]}
    return row | {"val_micro_f1": val["micro_f1"], "val_macro_f1": val["macro_f1"]}


def batch_outputs(logits: torch.Tensor) -> torch.Tensor:
    """What the reports and predict.py keep of a batch's logits: each label's score (its sigmoid), float32."""
    return logits.float().sigmoid()


def average_precision(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """One label's average precision from every score (NaN without positives): the sum over distinct scores, from
    the highest, of the precision there x the recall they add (scikit-learn's `average_precision_score`)."""
    total = positive.sum().item()
    if not total:
        return math.nan
    order = scores.argsort(descending=True, stable=True)
    ranked, hits = scores[order], positive[order].double()
    ends = torch.cat([ranked[1:] != ranked[:-1], torch.tensor([True])])  # the last sample of each tie
    tp = hits.cumsum(0)[ends]
    seen = torch.arange(1, len(ranked) + 1, dtype=torch.float64)[ends]
    recall_steps = torch.diff(tp, prepend=torch.zeros(1, dtype=torch.float64)) / total
    return (recall_steps * tp / seen).sum().item()


def build_report(outputs: dict, data_info: dict) -> dict:
    """From every score: loss, mAP, micro and macro F1 at the checkpoint's thresholds, and per label its precision,
    recall, F1, average precision (None: undefined, the label has no positives here), support and threshold."""
    scores, target = outputs["output"].double(), outputs["target"] > 0.5
    thresholds = thresholds_of(data_info)
    predicted = scores >= thresholds
    tp, fp = (predicted & target).sum(0).double(), (predicted & ~target).sum(0).double()
    positives = target.sum(0).double()
    micro, macro, f1 = f1_scores(tp, fp, positives)
    ap = torch.tensor(
        [average_precision(scores[:, j], target[:, j]) for j in range(scores.shape[1])], dtype=torch.float64
    )
    report = {"loss": outputs["loss_sum"] / outputs["weight_sum"], "map": _number(mean_ap(ap))}
    report |= {"micro_f1": micro, "macro_f1": macro, "num_samples": len(scores), "thresholds": thresholds.tolist()}
    precision, recall = tp / (tp + fp).clamp_min(1), tp / positives.clamp_min(1)
    report["per_label"] = {
        name: {
            "precision": precision[j].item(),
            "recall": recall[j].item(),
            "f1": f1[j].item(),
            "ap": _number(ap[j].item()),
            "support": int(positives[j].item()),
            "threshold": thresholds[j].item(),
        }
        for j, name in enumerate(output_names(data_info))
    }
    return report


def _number(value: float) -> float | None:
    """None (JSON null) for an undefined score: a label without positives has no average precision."""
    return value if math.isfinite(value) else None


def summary(report: dict) -> str:
    """The report in one line, for the end of training."""
    shown = "undefined" if report["map"] is None else f"{report['map']:.4f}"
    return f"mAP {shown}  micro F1 {report['micro_f1']:.4f}  macro F1 {report['macro_f1']:.4f}"


def format_report(report: dict, split: str) -> str:
    """A readable table of the report's numbers (for stderr)."""
    lines = [f"{split}: {report['num_samples']} samples  loss {report['loss']:.4f}  {summary(report)}"]
    width = max(12, *(len(name) for name in report["per_label"]))
    lines.append(f"{'label':<{width}}  precision  recall      f1        ap  support  threshold")
    for name, s in report["per_label"].items():
        ap = "     n/a" if s["ap"] is None else f"{s['ap']:8.4f}"
        scores = f"{s['precision']:9.4f}  {s['recall']:6.4f}  {s['f1']:6.4f}  {ap}"
        lines.append(f"{name:<{width}}  {scores}  {s['support']:7d}  {s['threshold']:9.3f}")
    return "\n".join(lines)


def joined(flags: list[bool], names: list[str], separator: str) -> str:
    """The names whose flag is set, joined by `separator` ("" for none)."""
    return separator.join(name for name, flag in zip(names, flags, strict=True) if flag)


def write_report(report: dict, outputs: dict, dataset, data_info: dict, out_dir: Path) -> None:
    """report.json, predictions.csv (every sample, in order: the true and the predicted labels, each label's score)
    and per_label.csv in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    names, separator = output_names(data_info), data_info.get("label_separator", ";")
    scores, target = outputs["output"], (outputs["target"] > 0.5).tolist()
    predicted = (scores.double() >= thresholds_of(data_info)).tolist()
    ids = getattr(dataset, "id_columns", [])  # values that name each sample (e.g. a CSV's id columns), to join on
    source = getattr(dataset, "source", str)  # `file:line`; a dataset of your own may not say: the index
    rows = [["index", "source", *ids, "target", "prediction", *(f"p_{name}" for name in names)]]
    for i, index in enumerate(outputs["index"].tolist()):
        row = [index, source(index), *(dataset.ids(index) if ids else [])]
        row += [joined(target[i], names, separator), joined(predicted[i], names, separator)]
        rows.append(row + [f"{p:.6f}" for p in scores[i].tolist()])
    atomic_write_text(out_dir / "predictions.csv", csv_text(rows))
    keys = ["precision", "recall", "f1", "ap", "support", "threshold"]
    table = [["label", *keys]]
    table += [[name, *("" if s[key] is None else s[key] for key in keys)] for name, s in report["per_label"].items()]
    atomic_write_text(out_dir / "per_label.csv", csv_text(table))


def prediction_table(outputs: torch.Tensor, data_info: dict) -> tuple[list[str], list[list]]:
    """predict.py's columns after the input's: `prediction` (the labels at or above their thresholds, joined by
    data.label_separator; empty for none), then each label's score, p_<label>."""
    names, separator = output_names(data_info), data_info.get("label_separator", ";")
    predicted = (outputs.double() >= thresholds_of(data_info)).tolist()
    rows = zip(predicted, outputs.tolist(), strict=True)
    cells = [[joined(flags, names, separator), *(f"{p:.6g}" for p in scores)] for flags, scores in rows]
    return ["prediction", *(f"p_{name}" for name in names)], cells


def csv_text(rows: list[list]) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue()
