"""Confusion matrices: counted on the device, scored per class, and drawn."""

import torch
from PIL import Image, ImageDraw, ImageFont


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


def confusion_csv(confusion: torch.Tensor, classes: list[str]) -> list[list]:
    """confusion_matrix.csv's rows: a header of predicted classes, then one row per true class."""
    rows = zip(classes, confusion.tolist(), strict=True)
    return [["true \\ predicted", *classes], *([name, *row] for name, row in rows)]


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
