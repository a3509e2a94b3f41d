"""mistakes.png: the most confident mistakes of an evaluation, as pictures captioned with their classes."""

import logging
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .utils import atomic_write

log = logging.getLogger(__name__)

MISTAKES_SHOWN = 16


def log_skipped(dataset) -> None:
    """Say how many unreadable images the prediction skipped (data.skip_corrupt)."""
    if skipped := dataset.take_skipped() if hasattr(dataset, "take_skipped") else 0:
        log.warning("skipped %d unreadable images (data.skip_corrupt); the report leaves them out", skipped)


def write_mistakes(outputs: dict, dataset, classes: list[str], out_dir: Path) -> None:
    """mistakes.png in `out_dir`: the MISTAKES_SHOWN wrong predictions made with the most confidence."""
    if not hasattr(dataset, "image"):  # a dataset of your own: no unaugmented image to show
        log.info("mistakes.png not drawn: %s has no image(index) method", type(dataset).__name__)
        return
    probs = outputs["output"]
    target = outputs["target"]
    confidence, prediction = probs.max(dim=1)
    wrong = (prediction != target).nonzero().flatten()
    worst = wrong[confidence[wrong].argsort(descending=True)][:MISTAKES_SHOWN].tolist()
    shown = [(outputs["index"][i].item(), classes[target[i]], classes[prediction[i]], confidence[i]) for i in worst]
    grid = mistakes_grid(dataset, shown)
    atomic_write(out_dir / "mistakes.png", lambda file: grid.save(file, format="PNG"))


def mistakes_grid(dataset, shown: list) -> Image.Image:
    """A grid of (index, true, predicted, confidence) images, each captioned with its classes. Drawn with
    PIL, not matplotlib: a fraction of the time, at the end of every run."""
    tile = 160
    caption = 30
    columns = 4
    rows = max(1, -(-len(shown) // columns))
    grid = Image.new("RGB", (columns * tile, rows * (tile + caption)), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    if not shown:
        draw.text((8, 8), "no mistakes", fill="black", font=font)
    for k, (index, true, predicted, confidence) in enumerate(shown):
        x = k % columns * tile
        y = k // columns * (tile + caption)
        image = dataset.image(index)  # uint8 (C, H, W), unaugmented
        picture = Image.fromarray(image.permute(1, 2, 0).squeeze(-1).numpy()).convert("RGB")
        size = tile - 8
        resample = Image.Resampling.NEAREST if max(picture.size) < size else Image.Resampling.BILINEAR
        grid.paste(picture.resize((size, size), resample), (x + 4, y + caption))
        draw.text((x + 4, y + 2), f"true {true}"[:26], fill="black", font=font)
        draw.text((x + 4, y + 15), f"predicted {predicted}"[:20] + f" ({confidence:.2f})", fill="firebrick", font=font)
    return grid
