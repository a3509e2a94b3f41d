"""Evaluation reports: per-class precision/recall/F1, confusion matrix, calibration, predictions, mistakes.

`predict_split` runs a model over a dataset and keeps, per sample, its index, target and class
probabilities; `build_report` turns them into the numbers; `write_report` writes them under
`<run_dir>/eval/<split>/`: report.json, confusion_matrix.csv/.png and predictions.csv (and mistakes.png:
report_images.py). evaluate.py and the end of training both go through `evaluate_split`.
"""

import csv
import io
import json
import logging
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from torch.utils.data import DataLoader, Dataset, default_collate

from .checkpoint import load_checkpoint, load_model_weights
from .engine import predict
from .errors import DataError
from .metrics import class_scores, confusion_counts, mean_divisor
from .report_images import log_skipped, write_mistakes  # images
from .utils import atomic_write, atomic_write_text

log = logging.getLogger(__name__)

ECE_BINS = 15
MAX_PROBABILITY_COLUMNS = 20  # predictions.csv gets p_<class> columns up to this many classes


class Indexed(Dataset):
    """`dataset[i]` with `i` appended, so every prediction keeps the sample it belongs to."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        item = self.dataset[index]
        return None if item is None else (*item, index)  # None: skipped as corrupt (data.skip_corrupt)


def collate_kept(batch):
    """default_collate of the samples that were not skipped; None when all were."""
    batch = [item for item in batch if item is not None]
    return default_collate(batch) if batch else None


@torch.inference_mode()
def predict_split(model, criterion, dataset, cfg, device, **loader_options) -> dict:
    """{"index", "target", "probs", "loss_sum", "weight_sum"} over `dataset` (or its `sampler`'s samples),
    through the engine's `predict`, as validation runs the model; the loss is summed as there (`mean_divisor`)."""
    loader = DataLoader(
        Indexed(dataset),
        batch_size=cfg.data.batch_size,
        num_workers=cfg.data.num_workers,
        collate_fn=collate_kept,
        **loader_options,
    )
    model.eval()
    indices = []
    targets = []
    probs = []
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    weight_sum = torch.zeros((), dtype=torch.float64, device=device)
    for batch in loader:
        if batch is None:
            continue
        inputs, target, index = batch
        inputs, target = inputs.to(device), target.to(device)
        logits = predict(model, inputs, device, cfg)
        divisor = mean_divisor(criterion, target)
        loss_sum += criterion(logits, target).double() * divisor
        weight_sum += divisor
        indices.append(index)
        targets.append(target.cpu())
        probs.append(logits.softmax(dim=1).cpu())
    if not indices:  # nothing to predict, or every sample skipped
        return {"index": torch.empty(0, dtype=torch.int64), "loss_sum": 0.0, "weight_sum": 0.0}
    return {
        "index": torch.cat(indices),
        "target": torch.cat(targets),
        "probs": torch.cat(probs),
        "loss_sum": loss_sum.item(),
        "weight_sum": weight_sum.item(),
    }


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


def build_report(outputs: dict, classes: list[str]) -> dict:
    """The numbers: loss, accuracy, top-5 accuracy (more than 5 classes), macro and weighted F1,
    per-class precision/recall/F1/support, the confusion matrix and the expected calibration error."""
    probs = outputs["probs"]
    target = outputs["target"]
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
        for i, name in enumerate(classes)
    }
    report["confusion_matrix"] = confusion.tolist()
    report["ece"] = expected_calibration_error(confidence, prediction == target)
    return report


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


def write_report(report: dict, outputs: dict, dataset, classes: list[str], out_dir: Path) -> None:
    """report.json, confusion_matrix.csv/.png, predictions.csv (and mistakes.png) in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    confusion = torch.tensor(report["confusion_matrix"])
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["true \\ predicted", *classes])
    writer.writerows([name, *row] for name, row in zip(classes, confusion.tolist(), strict=True))
    atomic_write_text(out_dir / "confusion_matrix.csv", text.getvalue())
    picture = confusion_image(confusion, classes)
    atomic_write(out_dir / "confusion_matrix.png", lambda file: picture.save(file, format="PNG"))

    probs = outputs["probs"]
    target = outputs["target"]
    confidence, prediction = probs.max(dim=1)
    with_probs = len(classes) <= MAX_PROBABILITY_COLUMNS
    ids = getattr(dataset, "id_columns", [])  # values that name each sample (e.g. a CSV's id columns), to join on
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(
        ["index", "source", *ids, "target", "prediction", "confidence", *([f"p_{c}" for c in classes] * with_probs)]
    )
    for i, index in enumerate(outputs["index"].tolist()):
        row = [index, dataset.source(index), *(dataset.ids(index) if ids else [])]
        row += [classes[target[i]], classes[prediction[i]], f"{confidence[i]:.6f}"]
        writer.writerow(row + ([f"{p:.6f}" for p in probs[i].tolist()] if with_probs else []))
    atomic_write_text(out_dir / "predictions.csv", text.getvalue())
    write_mistakes(outputs, dataset, classes, out_dir)  # images


def confusion_image(confusion: torch.Tensor, classes: list[str]) -> Image.Image:
    """Row-normalised (each true class sums to 1) shades of blue, the counts written in the cells when
    few; true classes down the side, predicted ones along the top. Drawn with PIL: faster than matplotlib."""
    n = len(classes)
    font = ImageFont.load_default()
    rates = (confusion.double() / confusion.sum(dim=1, keepdim=True).clamp_min(1)).tolist()
    cell = 36 if n <= 30 else max(4, 1080 // n)  # more classes: cells too small to write in
    names = [name if len(name) <= 24 else name[:23] + "~" for name in classes]
    label = int(max(font.getlength(name) for name in names)) + 12
    top, left = label + 20, label + 20
    canvas = Image.new("RGB", (left + n * cell + 70, top + n * cell + 10), "white")
    draw = ImageDraw.Draw(canvas)
    title = "true class (rows) x predicted class (columns); colour: share of the row"
    draw.text((4, 2), title, fill="black", font=font)

    def blue(rate: float) -> tuple[int, int, int]:  # white to dark blue, as matplotlib's "Blues"
        return tuple(round(a + (b - a) * rate) for a, b in zip((247, 251, 255), (8, 48, 107), strict=True))

    for row in range(n):
        y = top + row * cell
        if cell >= 10:  # room for a name
            draw.text((left - 6, y + cell // 2), names[row], fill="black", font=font, anchor="rm")
        for col in range(n):
            x = left + col * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=blue(rates[row][col]))
            if n <= 30:
                color = "white" if rates[row][col] > 0.5 else "black"
                count = str(int(confusion[row, col]))
                draw.text((x + cell // 2, y + cell // 2), count, fill=color, font=font, anchor="mm")
    for col in range(n if cell >= 10 else 0):  # column names, written upwards
        text = Image.new("RGB", (label, cell), "white")
        ImageDraw.Draw(text).text((label - 6, cell // 2), names[col], fill="black", font=font, anchor="rm")
        canvas.paste(text.rotate(90, expand=True), (left + col * cell, top - label))
    x = left + n * cell + 12  # the colour scale: 1 at the top, 0 at the bottom
    for y in range(n * cell):
        draw.line([x, top + y, x + 12, top + y], fill=blue(1 - y / max(1, n * cell - 1)))
    draw.text((x + 16, top), "1", fill="black", font=font)
    draw.text((x + 16, top + n * cell - 10), "0", fill="black", font=font)
    return canvas


def evaluate_split(
    model, criterion, dataset, classes: list, cfg, device, out_dir: Path | None, predict_outputs=predict_split
) -> dict:
    """Predict `dataset`, build its report and (with `out_dir`) write its files; returns the report.
    `predict_outputs` takes `predict_split`'s arguments and returns its outputs, for every sample."""
    outputs = predict_outputs(model, criterion, dataset, cfg, device)
    log_skipped(dataset)  # images
    if not len(outputs["index"]):
        raise DataError("no samples to evaluate: the split is empty, or every sample in it was skipped")
    report = build_report(outputs, classes)
    if out_dir is not None:
        write_report(report, outputs, dataset, classes, out_dir)
    return report


def report_best(model, criterion, datasets: dict, classes: list, cfg, run_dir: Path, device, **options) -> None:
    """The end of training: the best checkpoint (else last.pt) on each split, reports in `<run_dir>/eval/`."""
    checkpoints = run_dir / "checkpoints"
    path = checkpoints / "best.pt" if (checkpoints / "best.pt").is_file() else checkpoints / "last.pt"
    load_model_weights(model, load_checkpoint(path), path)
    write = options.pop("write", True)
    for split, dataset in datasets.items():
        out_dir = run_dir / "eval" / split
        report = evaluate_split(model, criterion, dataset, classes, cfg, device, out_dir if write else None, **options)
        log.info(
            "%s on %s: accuracy %.4f  macro F1 %.4f  ECE %.4f  (%d samples; report in %s)",
            path.name,
            split,
            report["accuracy"],
            report["macro_f1"],
            report["ece"],
            report["num_samples"],
            out_dir,
        )
