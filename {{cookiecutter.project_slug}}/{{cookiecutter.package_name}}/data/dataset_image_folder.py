"""Images sorted into class folders: `<root>/train/<class>/*.png`, `<root>/val/<class>/*`, `<root>/test/<class>/*`.

Without a `val/` folder a seeded `data.val_fraction` of train is held out. A `test/` folder is optional:
it is only evaluated (at the end of training, and by `evaluate.py --split test`), never trained on.
Hidden files (`._photo.png` from a Mac, `.DS_Store`) and `__MACOSX/` folders are skipped, and counted in the log.

Every `dataset.py` has EXPECTED_LAYOUT, PREDICT_INPUTS, ensure_data_root, build_datasets, build_test_set,
preload_split and predict_inputs (for loaders.py and predict.py); its datasets have a `collate_fn`, a
`source(i)`, maybe `take_skipped()` and, for images, `image(i)` (report.py).
"""

from functools import partial
from pathlib import Path

from ..utils import sort_labels
from .common import DataError, holdout_split, write_sample_root
from .images import PREDICT_INPUTS, eval_dataset, image_datasets, image_files, is_hidden, predict_inputs, preload_split

EXPECTED_LAYOUT = (
    "  <root>/train/<class_name>/<image>.png|jpg|...\n  <root>/val/<class_name>/<image>  (optional)\n"
    "  <root>/test/<class_name>/<image>  (optional; evaluated only)"
)
ensure_data_root = partial(write_sample_root, expected_layout=EXPECTED_LAYOUT)

__all__ = [
    "EXPECTED_LAYOUT",
    "PREDICT_INPUTS",
    "build_datasets",
    "build_test_set",
    "ensure_data_root",
    "predict_inputs",
    "preload_split",
]


def class_folders(split_dir: Path) -> list[str]:
    """Class names: the folders under `split_dir` (hidden ones and `__MACOSX` are not classes), sorted."""
    return sort_labels(p.name for p in split_dir.iterdir() if p.is_dir() and not is_hidden(p.name))


def find_images(split_dir: Path, classes: list[str]) -> list[tuple[str, int]]:
    """(path, label) pairs for every image under `split_dir/<class>/`, by class, then path."""
    unknown = [c for c in class_folders(split_dir) if c not in classes]
    if unknown:
        raise DataError(f"{split_dir} has class folders {unknown} that train does not have ({classes})")
    label = {name: i for i, name in enumerate(classes)}
    found = [p.relative_to(split_dir) for p in image_files(split_dir)]
    # Images beside the class folders belong to no class.
    return sorted(((str(split_dir / p), label[p.parts[0]]) for p in found if len(p.parts) > 1), key=lambda s: s[1])


def build_datasets(cfg, data_info: dict | None = None):
    """(train_set, val_set, data_info); `data_info` from a checkpoint fixes classes and normalisation."""
    root = Path(cfg.data.root)
    train_dir = root / "train"
    val_dir = root / "val"
    if not train_dir.is_dir():
        raise DataError(f"{train_dir} is not a folder. Expected layout under data.root:\n{EXPECTED_LAYOUT}")
    classes = list(data_info["classes"]) if data_info is not None else class_folders(train_dir)
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
    return image_datasets(cfg, train_samples, val_samples, classes, data_info)


def build_test_set(cfg, data_info: dict):
    """The test split under `<root>/test/`, transformed as validation is; None without that folder."""
    test_dir = Path(cfg.data.root) / "test"
    if not test_dir.is_dir():
        return None
    return eval_dataset(cfg, find_images(test_dir, list(data_info["classes"])), data_info)
