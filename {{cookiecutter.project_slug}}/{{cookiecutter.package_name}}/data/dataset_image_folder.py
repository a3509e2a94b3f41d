"""Images sorted into class folders: `<root>/train/<class>/*.png` and `<root>/val/<class>/*`.

Images are read lazily (memory grows with the file list, not the images); decoding,
mode conversion and transforms are in `images.py`. Without a `val/` folder a seeded
`data.val_fraction` of train is held out.
"""

from pathlib import Path

from .common import DataError, holdout_split
from .images import IMAGE_EXTENSIONS, image_datasets, open_image

EXPECTED_LAYOUT = "  <root>/train/<class_name>/<image>.png|jpg|...\n  <root>/val/<class_name>/<image>  (optional)"

__all__ = ["EXPECTED_LAYOUT", "DataError", "build_datasets", "find_images"]


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


def build_datasets(cfg, data_info: dict | None = None):
    """(train_set, val_set, data_info); `data_info` from a checkpoint fixes classes and normalisation."""
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
        train_ids, val_ids = holdout_split(len(train_samples), cfg.data.val_fraction, cfg.seed)
        val_samples = [train_samples[i] for i in val_ids]
        train_samples = [train_samples[i] for i in train_ids]
    if not train_samples or not val_samples:
        raise DataError(
            f"{len(train_samples)} train / {len(val_samples)} val images under {root}: both splits need at least "
            "one (add images, add a val/ folder, or change data.val_fraction)"
        )
    return image_datasets(cfg, train_samples, val_samples, open_image, classes, data_info)
