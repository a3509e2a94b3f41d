"""Write a small, learnable image-folder dataset: coloured shapes on noisy backgrounds.

    python -m {{ cookiecutter.package_name }}.data.sample data/sample

Each class is a shape with its own base colour; size, position, colour shade,
background and image size vary, and some files are JPEG, so the loader meets
mixed sizes and formats as it would with real data.
"""

import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw
from tqdm import tqdm

from ..utils import show_progress

CLASSES = {"circle": (220, 60, 60), "square": (60, 170, 60), "triangle": (60, 90, 220), "cross": (230, 180, 40)}


def draw_sample(shape: str, rng: random.Random) -> Image.Image:
    size = rng.randint(40, 80)
    background = tuple(rng.randint(150, 255) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    color = tuple(max(0, min(255, c + rng.randint(-40, 40))) for c in CLASSES[shape])
    r = rng.uniform(0.25, 0.4) * size
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    else:
        w = r / 3
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=color)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=color)
    for _ in range(size * 2):  # speckle noise
        image.putpixel((rng.randrange(size), rng.randrange(size)), tuple(rng.randint(0, 255) for _ in range(3)))
    return image


def write_sample(root, train_per_class: int = 60, val_per_class: int = 15, seed: int = 0) -> Path:
    """Write `root/train/<class>/*.png|jpg` and `root/val/...`."""
    root = Path(root)
    rng = random.Random(seed)
    total = (train_per_class + val_per_class) * len(CLASSES)
    bar = tqdm(total=total, desc="writing sample images", leave=False, disable=not show_progress(True))
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for shape in CLASSES:
            folder = root / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                ext = "jpg" if i % 4 == 0 else "png"
                draw_sample(shape, rng).save(folder / f"{shape}_{i:04d}.{ext}")
                bar.update()
    bar.close()
    return root


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "data/sample"
    print(f"wrote sample images to {write_sample(target)}")
