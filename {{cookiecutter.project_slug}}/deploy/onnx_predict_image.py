"""Predict with an exported .onnx model alone: numpy, Pillow and onnxruntime, no torch, no project code.

    pip install numpy pillow onnxruntime
    python onnx_predict.py best.onnx photo.jpg more_photos/ --output predictions.csv

Copy this file and the .onnx file (from `python export.py CHECKPOINT`) wherever the model should run.
The preprocessing is validation's, with the values the .onnx file carries (image size, mode, mean, std):
decode upright (EXIF), convert to the mode, resize to size x size (bilinear, antialiased), or for
pretrained weights their preset (shorter side to resize_size, centre crop), scale to [0, 1], normalise.
The CSV has predict.py's columns: input, prediction, probability, p_<class> per class.
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image, ImageOps

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def image_paths(inputs: list[str]) -> list[Path]:
    """Files as given; folders searched recursively (sorted, hidden names skipped)."""
    paths = []
    for path in map(Path, inputs):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in EXTENSIONS)
            paths += [p for p in found if not any(part.startswith(".") for part in p.relative_to(path).parts)]
        elif path.is_file():
            paths.append(path)
        else:
            sys.exit(f"error: input {path} does not exist")
    return paths


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit: 0..65535 to 0..255
        image = image.convert("I").point(lambda value: value / 257).convert("L")
    elif image.mode == "F":
        image = image.point(lambda value: min(max(value, 0), 255)).convert("L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")  # transparent pixels become white
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert(mode)


def preprocess(path: Path, info: dict) -> np.ndarray:
    """float32 (C, size, size), as the model was validated on."""
    size = info["image_size"]
    resize = info.get("resize_size", 0)
    with Image.open(path) as image:
        image.draft(None, (resize or size,) * 2)  # JPEG: decode at 1/2, 1/4 or 1/8 scale where that keeps >= it
        image = to_mode(ImageOps.exif_transpose(image), info["image_mode"])
    if resize:  # torchvision's preset: the shorter side to `resize` (aspect kept), then the centre crop
        short, long = sorted(image.size)
        scaled = (resize, int(resize * long / short))
        resample = Image.BICUBIC if info.get("interpolation") == "bicubic" else Image.BILINEAR
        image = image.resize(scaled if image.width <= image.height else scaled[::-1], resample)
        left, top = round((image.width - size) / 2), round((image.height - size) / 2)
        image = image.crop((left, top, left + size, top + size))
    pixels = np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.float32) / 255
    pixels = pixels.reshape(size, size, -1).transpose(2, 0, 1)  # HWC -> CHW (grayscale: one channel)
    mean, std = (np.asarray(info[key], dtype=np.float32)[:, None, None] for key in ("mean", "std"))
    return (pixels - mean) / std


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="an .onnx file written by export.py")
    parser.add_argument("inputs", nargs="+", help="image files and folders")
    parser.add_argument("--output", default="predictions.csv", help="default: %(default)s")
    parser.add_argument("--batch-size", type=int, default=64, help="default: %(default)s")
    args = parser.parse_args(argv)
    session = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    metadata = json.loads(session.get_modelmeta().custom_metadata_map["classifier.json"])
    info = metadata["data_info"]
    classes = metadata["classes"]

    paths = image_paths(args.inputs)
    with open(args.output, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["input", "prediction", "probability", *(f"p_{name}" for name in classes)])
        for start in range(0, len(paths), args.batch_size):
            batch = paths[start : start + args.batch_size]
            logits = session.run(["logits"], {"input": np.stack([preprocess(p, info) for p in batch])})[0]
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            for path, row in zip(batch, exp / exp.sum(axis=1, keepdims=True), strict=True):
                best = int(row.argmax())
                writer.writerow([path, classes[best], f"{row[best]:.6g}", *(f"{p:.6g}" for p in row)])
    print(f"predicted {len(paths)} images; wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
