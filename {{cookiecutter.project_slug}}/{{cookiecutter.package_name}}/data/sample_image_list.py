"""Write a small, learnable image-list dataset: four textures on noise, listed in train.txt / val.txt.

    python -m <package>.data.sample data/sample

The classes are textures (horizontal stripes, vertical stripes, a checkerboard, dots)
with a random period, phase, small tilt and colours, under pixel noise. They differ
in structure, not colour, so they stay learnable in grayscale (data.image_mode=L) and
under horizontal flips. All images share one flat `images/` folder, as exported data
often does; the lists name each file's class. Sizes, aspect ratios, PIL modes (RGB, L,
P, RGBA, 16-bit I;16) and formats (PNG, JPEG) vary, and some file names contain a
space, so the loader meets the variety of real data.
"""

import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw
from tqdm import tqdm

from ..utils import show_progress

CLASSES = ("horizontal", "vertical", "checker", "dots")
# (PIL mode, file extension) cycled over the files; JPEG cannot hold P, RGBA or I;16.
VARIANTS = (("RGB", "png"), ("L", "jpg"), ("P", "png"), ("RGB", "jpg"), ("RGBA", "png"), ("I;16", "png"), ("L", "png"))


def texture_mask(kind: str, size: tuple[int, int], rng: random.Random) -> Image.Image:
    """The texture as an L mask (255 = foreground) of `size`, tilted by a few degrees."""
    width, height = size
    # Drawn larger, rotated, then cropped: the tilt leaves no empty corners.
    side = int(max(width, height) * 1.5) + 2
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    period = rng.randint(7, 14)
    shift = rng.randrange(period)
    if kind in ("horizontal", "vertical"):
        thickness = rng.randint(period // 3, period // 2 + 1)
        for start in range(-shift, side, period):
            if kind == "horizontal":
                draw.rectangle([0, start, side, start + thickness - 1], fill=255)
            else:
                draw.rectangle([start, 0, start + thickness - 1, side], fill=255)
    elif kind == "checker":
        cell = period // 2 + 1
        for row, y in enumerate(range(-shift, side, cell)):
            for col, x in enumerate(range(-shift, side, cell)):
                if (row + col) % 2:
                    draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=255)
    else:  # dots on a staggered grid
        radius = rng.uniform(0.2, 0.3) * period
        for row, y in enumerate(range(-shift, side + period, period)):
            for x in range(-shift + (period // 2) * (row % 2), side + period, period):
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
    mask = mask.rotate(rng.uniform(-10, 10), resample=Image.BICUBIC)
    left, top = (side - width) // 2, (side - height) // 2
    return mask.crop((left, top, left + width, top + height))


def draw_sample(kind: str, rng: random.Random) -> Image.Image:
    """An RGB image of texture `kind`: light on dark or dark on light, with grey pixel noise."""
    side = rng.randint(44, 96)
    aspect = rng.uniform(0.75, 1.33)
    size = (side, max(24, round(side * aspect)))
    dark = tuple(rng.randint(0, 90) for _ in range(3))
    light = tuple(rng.randint(150, 255) for _ in range(3))
    foreground, background = (light, dark) if rng.random() < 0.5 else (dark, light)
    image = Image.composite(
        Image.new("RGB", size, foreground), Image.new("RGB", size, background), texture_mask(kind, size, rng)
    )
    noise = Image.frombytes("L", size, rng.randbytes(size[0] * size[1])).convert("RGB")
    return Image.blend(image, noise, rng.uniform(0.15, 0.4))


def to_variant(image: Image.Image, mode: str, rng: random.Random) -> Image.Image:
    if mode == "P":
        return image.convert("P", palette=Image.ADAPTIVE, colors=32)
    if mode == "RGBA":
        image = image.convert("RGBA")
        image.putalpha(rng.randint(170, 255))  # semi-transparent: the loader composites it on white
        return image
    if mode == "I;16":
        # A 16-bit grayscale scan: 0..255 scaled to 0..65535.
        return image.convert("L").convert("I").point(lambda value: value * 257).convert("I;16")
    return image.convert(mode)


def write_sample(root, train_per_class: int = 80, val_per_class: int = 20, seed: int = 0) -> Path:
    """Write `root/images/*.png|jpg`, `root/train.txt` and `root/val.txt` (`relative/path label` lines)."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    number = 0
    total = (train_per_class + val_per_class) * len(CLASSES)
    bar = tqdm(total=total, desc="writing sample images", leave=False, disable=not show_progress(True))
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        labels = [kind for kind in CLASSES for _ in range(count)]
        rng.shuffle(labels)  # file order and names say nothing about the class
        lines = ["# relative/path label  (paths relative to this file's folder; names may contain spaces)"]
        for label in labels:
            mode, ext = VARIANTS[number % len(VARIANTS)]
            name = f"scan {number:05d}.{ext}" if number % 5 == 0 else f"img_{number:05d}.{ext}"
            image = to_variant(draw_sample(label, rng), mode, rng)
            if ext == "jpg":
                image.save(root / "images" / name, quality=rng.randint(70, 95))
            else:
                image.save(root / "images" / name)
            lines.append(f"images/{name} {label}")
            number += 1
            bar.update()
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    bar.close()
    return root


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "data/sample"
    print(f"wrote sample images and lists to {write_sample(target)}")
