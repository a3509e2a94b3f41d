"""Images sorted into class folders: `<root>/train/<class>/*.png` and `<root>/val/<class>/*`.

Images are read lazily in `__getitem__` (memory grows with the file list, not the
images), converted to one explicit PIL mode (RGB by default) and resized to
`data.image_size`. Without a `val/` folder a seeded `data.val_fraction` of train is held out.
"""

from pathlib import Path

import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset
from torchvision.transforms import v2

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
EXPECTED_LAYOUT = "  <root>/train/<class_name>/<image>.png|jpg|...\n  <root>/val/<class_name>/<image>  (optional)"


class DataError(ValueError):
    """Missing or malformed data; the message names the file and what was expected."""


def find_images(split_dir: Path, classes: list[str]) -> list[tuple[str, int]]:
    """(path, label) pairs for every image under `split_dir/<class>/`, in a stable order."""
    class_dirs = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    unknown = [c for c in class_dirs if c not in classes]
    if unknown:
        raise DataError(f"{split_dir} has class folders {unknown} that train does not have ({classes})")
    samples = []
    for label, name in enumerate(classes):
        folder = split_dir / name
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        samples += [(str(p), label) for p in files]
    if not samples:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found under {split_dir}")
    return samples


class ImageFolderDataset(Dataset):
    def __init__(self, samples: list[tuple[str, int]], transform, mode: str = "RGB"):
        self.samples = samples
        self.transform = transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            with Image.open(path) as image:
                image = ImageOps.exif_transpose(image)  # honour the camera's orientation tag
                # PIL gives L, P, RGBA, CMYK, ... as stored; convert explicitly so every
                # sample has the same channels, in RGB order (not OpenCV's BGR).
                image = image.convert(self.mode)
        except OSError as err:
            raise DataError(f"cannot read image {path}: {err}") from None
        # PIL image in, float tensor (C, H, W) out: the transform does the conversion.
        return self.transform(image), label


def build_transforms(cfg, train: bool):
    steps = [v2.Resize((cfg.data.image_size, cfg.data.image_size), antialias=True)]
    if train and cfg.data.augment:
        steps.append(v2.RandomHorizontalFlip())
    steps += [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=cfg.data.mean, std=cfg.data.std),
    ]
    return v2.Compose(steps)


def build_datasets(cfg, data_info: dict | None = None):
    """(train_set, val_set, data_info); `data_info` from a checkpoint fixes the classes."""
    root = Path(cfg.data.root)
    train_dir, val_dir = root / "train", root / "val"
    if not train_dir.is_dir():
        raise DataError(f"{train_dir} is not a folder. Expected layout under data.root:\n{EXPECTED_LAYOUT}")
    if data_info is not None:
        classes = list(data_info["classes"])
    else:
        classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
        if not classes:
            raise DataError(f"{train_dir} has no class folders. Expected layout:\n{EXPECTED_LAYOUT}")
    train_samples = find_images(train_dir, classes)
    empty = sorted(set(classes) - {classes[label] for _, label in train_samples})
    if empty:
        raise DataError(f"class folders {empty} under {train_dir} hold no images; add images or remove them")
    if val_dir.is_dir():
        val_samples = find_images(val_dir, classes)
    else:
        # No val/ on disk: hold out a seeded share of train (the same split on every run).
        order = torch.randperm(len(train_samples), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
        n_val = max(1, round(len(order) * cfg.data.val_fraction))
        val_samples = [train_samples[i] for i in sorted(order[:n_val])]
        train_samples = [train_samples[i] for i in sorted(order[n_val:])]
    if not train_samples or not val_samples:
        raise DataError(
            f"{len(train_samples)} train / {len(val_samples)} val images under {root}: both splits need at least "
            "one (add images, add a val/ folder, or change data.val_fraction)"
        )
    mode = cfg.data.image_mode
    info = {
        "classes": classes,
        "num_classes": len(classes),
        "in_channels": 3 if mode == "RGB" else 1,
        "image_size": cfg.data.image_size,
        "image_mode": mode,
        "mean": list(cfg.data.mean),
        "std": list(cfg.data.std),
    }
    train_set = ImageFolderDataset(train_samples, build_transforms(cfg, train=True), mode)
    val_set = ImageFolderDataset(val_samples, build_transforms(cfg, train=False), mode)
    return train_set, val_set, info
