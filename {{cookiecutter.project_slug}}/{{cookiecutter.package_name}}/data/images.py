"""Image decoding shared by the image dataset types, and what they expose to the loaders and predict.py.

Real data is messy: EXIF orientation is applied, every PIL mode converted explicitly (RGB, not OpenCV's BGR), every
size brought to `data.image_size` (`Resize`); a corrupt file is a `DataError` naming it, or skipped (data.skip_corrupt).
"""

import logging
import math
import multiprocessing
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset, default_collate

from ..errors import ConfigError, DataError
from ..models.torchvision_models import pretrained_preprocessing
from .augment import SQUASH, Augmentation, BatchTransform, Resize, batch_mixing, build_transforms, eval_pixels
from .decode import decoded_batches
from .disk_cache import cached_images
from .preload import check_fits, gib
from .resumable import SeededIndex, seed_position

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MODE_CHANNELS = {"RGB": 3, "L": 1}
PREDICT_INPUTS = "image files and folders (searched recursively, sorted; hidden files skipped)"


def is_hidden(path, within=None) -> bool:
    """A name starting with '.' (macOS `._photo.png`, `.DS_Store`) or anything under `__MACOSX/`.

    Folders count only below `within` (where a file was found): a listed path through a hidden folder is fine.
    """
    path = Path(path)
    names = path.relative_to(within).parts if within is not None else (path.name,)
    return "__MACOSX" in path.parts or any(name.startswith(".") and name not in (".", "..") for name in names)


def skip_hidden(entries: list, where, path_of: Callable = lambda entry: entry, within=None) -> list:
    """`entries` without hidden files (see `is_hidden`); logs how many were skipped in `where`."""
    kept = [entry for entry in entries if not is_hidden(path_of(entry), within)]
    if len(kept) < len(entries):
        skipped = len(entries) - len(kept)
        log.info("skipped %d hidden file(s) in %s (names starting with '.' or under __MACOSX/)", skipped, where)
    return kept


def image_files(folder: Path) -> list[Path]:
    """The images under `folder` (recursively, sorted, hidden ones skipped and counted); none is an error."""
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    found = skip_hidden(found, folder, within=folder)
    if not found:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found under {folder}")
    return found


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """Convert any PIL mode to `mode` ("RGB" or "L"), choosing the conversion explicitly."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit scans: scale 0..65535 to 0..255 (a plain convert would clip them to white).
        image = image.convert("I").point(lambda value: value / 257).convert("L")
    elif image.mode == "F":
        image = image.point(lambda value: min(max(value, 0), 255)).convert("L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels become white, not whatever colour they happen to hold.
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image if image.mode == mode else image.convert(mode)  # CMYK, YCbCr, P, 1, ... by PIL's own matrices


def open_image(path, size: int | None = None) -> Image.Image:
    """Decode a file fully (a truncated file fails here, not later), upright per its EXIF tag.

    With `size`, a JPEG is decoded at 1/2, 1/4 or 1/8 scale where both sides stay >= size (libjpeg's
    DCT scaling, `Image.draft`): 2-3x faster on photos, and little lost, since every image is resized to
    `size` (its shorter side, or a square) next. Other formats decode fully.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if size is not None:
                    image.draft(None, (size, size))
                image.load()
                ImageOps.exif_transpose(image, in_place=True)  # no copy of an image already upright
                return image
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise DataError(f"cannot read image {path}: {err}") from None


class ImageDataset(Dataset):
    """(source, label) pairs, decoded lazily by `load(source)` (memory grows with the list, not the images).

    `stats` is the (mean, std) `transform` normalises with, for preloading's batched twin; `mix` (train)
    mixes whole batches in `collate_fn` (data.mixup_alpha / data.cutmix_alpha).
    """

    def __init__(self, samples, load, mode: str, size: int, transform=None, skip_corrupt=False, resize=SQUASH):
        self.samples = samples
        self.load = load
        self.mode = mode
        self.size = size
        self.resize = resize  # how a decoded image becomes size x size, and what preloading stores
        self.transform = transform
        self.skip_corrupt = skip_corrupt
        self.stats = self.mix = None
        # Shared with DataLoader worker processes, so skips made there are counted too. A spawn-context
        # counter can be handed to workers of every start method (fork, forkserver, spawn).
        self.skipped = multiprocessing.get_context("spawn").Value("i", 0) if skip_corrupt else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        if isinstance(index, SeededIndex):  # train: this sample's augmentation, whichever process loads it
            seed_position(index.seed)  # torch's CPU generator, `random` and NumPy: whichever a transform draws from
        source, label = self.samples[index]
        try:
            image = to_mode(self.load(source), self.mode)
        except DataError as err:
            if not self.skip_corrupt:
                raise
            log.warning("skipping %s (data.skip_corrupt is on)", err)
            with self.skipped.get_lock():
                self.skipped.value += 1
            return None  # dropped by collate_fn
        return self.transform(image), label

    def collate_fn(self, batch):
        """default_collate without the skipped samples, then `mix`; an all-skipped batch is empty, shaped right."""
        batch = [sample for sample in batch if sample is not None]
        if not batch:
            return torch.empty((0, MODE_CHANNELS[self.mode], self.size, self.size)), torch.empty(0, dtype=torch.int64)
        inputs, targets = default_collate(batch)
        return self.mix(inputs, targets) if self.mix is not None else (inputs, targets)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.samples], dtype=torch.int64)

    def take_skipped(self) -> int:
        """Corrupt samples skipped since the last call."""
        if self.skipped is None:
            return 0
        with self.skipped.get_lock():
            count, self.skipped.value = self.skipped.value, 0
        return count

    def source(self, index: int) -> str:
        """Where sample `index` comes from, for predictions.csv: its file (or what `load` calls it)."""
        source = self.samples[index][0]
        return self.load.describe(source) if hasattr(self.load, "describe") else str(source)

    def image(self, index: int) -> torch.Tensor:
        """Sample `index` as uint8 (C, image_size, image_size), as validation sees it: for mistakes.png."""
        return eval_pixels(self.size, self.resize)(to_mode(self.load(self.samples[index][0]), self.mode))

    def with_transform(self, transform) -> "ImageDataset":
        """The same samples under another `transform`, not mixed."""
        view = ImageDataset(self.samples, self.load, self.mode, self.size, transform, self.skip_corrupt, self.resize)
        view.skipped, view.stats = self.skipped, self.stats
        return view


def compute_mean_std(dataset: ImageDataset, cfg, max_images: int) -> tuple[list[float], list[float]]:
    """Per-channel mean/std of up to `max_images` (seeded choice) train images at data.image_size."""
    ids = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed))[:max_images].tolist()
    total = total_sq = count = 0
    for images, _ in decoded_batches(dataset, cfg, "computing mean/std", 64, ids):
        x = images.double().div_(255).transpose(0, 1).flatten(1)  # (C, pixels); an all-skipped batch adds 0
        total, total_sq, count = total + x.sum(1), total_sq + x.square().sum(1), count + x.shape[1]
    dataset.take_skipped()  # files skipped here are reported again when training reads them
    if not count:
        raise DataError("no readable train images to compute data.mean/data.std from")
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt().clamp_min(1e-3)  # a flat channel: no divide by 0
    return [round(v, 4) for v in mean.tolist()], [round(v, 4) for v in std.tolist()]


def check_mean_std(mean: list, std: list, mode: str) -> None:
    channels = MODE_CHANNELS[mode]
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise ConfigError(
            f"config keys 'data.mean' = {mean!r} and 'data.std' = {std!r} need {channels} values each for "
            f"image mode {mode!r}, std all > 0 (or both [] for the default normalisation)"
        )


def image_datasets(
    cfg, train_samples, val_samples, classes, data_info=None, load=None, known_stats=None, mode=None, native_size=64
):
    """(train_set, val_set, data_info). Normalisation comes from `data_info` (a checkpoint), else
    `data.mean`/`data.std`, else the pretrained weights' (`model.pretrained`), else `known_stats` (a
    dataset's published values), else train. data.image_size=0 is resolved (in `cfg` too,
    for config.yaml) to the pretrained weights' input size, else to `native_size`.
    Pretrained weights also fix the `Resize` (their presets' resize and crop, scaled to data.image_size).
    `load(source)` gives a PIL image; by default `source` is a file path, decoded at the size `Resize` needs."""
    mode = data_info["image_mode"] if data_info else (mode or cfg.data.image_mode)
    pretrained = pretrained_preprocessing(cfg.model, MODE_CHANNELS[mode])
    size = cfg.data.image_size = cfg.data.image_size or (pretrained or {}).get("image_size", native_size)
    resize = Resize.of(data_info or pretrained or {}, size)  # the checkpoint's, else the pretrained weights'
    load = load or partial(open_image, size=resize.stored(size))
    train_set = ImageDataset(train_samples, load, mode, size, skip_corrupt=cfg.data.skip_corrupt, resize=resize)
    if data_info is not None:
        mean, std = data_info["mean"], data_info["std"]
    elif cfg.data.mean or cfg.data.std:
        mean, std = list(cfg.data.mean), list(cfg.data.std)
        check_mean_std(mean, std, mode)
    elif pretrained:
        mean, std = pretrained["mean"], pretrained["std"]  # what the pretrained weights were trained with
    elif known_stats is not None:
        mean, std = known_stats
    else:
        mean, std = compute_mean_std(train_set, cfg, cfg.data.stats_images)
        used = min(len(train_set), cfg.data.stats_images)
        log.info("data.mean=%s data.std=%s computed from %d train images", mean, std, used)
    info = {"classes": list(classes), "num_classes": len(classes), "num_outputs": len(classes)}  # outputs: the head
    info |= {
        "in_channels": MODE_CHANNELS[mode],
        "image_size": size,
        "image_mode": mode,
        "resize_size": resize.side,
        "interpolation": resize.interpolation,
        "mean": list(mean),
        "std": list(std),
        "class_counts": torch.bincount(train_set.labels, minlength=len(classes)).tolist(),  # trainer.class_weights
    }
    train_set.transform = build_transforms(size, mean, std, Augmentation.from_config(cfg), resize)
    train_set.mix = batch_mixing(cfg, len(classes))
    if train_set.mix is not None:
        log.info("mixup/cutmix on: train_acc counts a mixed image as right when the model picks its dominant class")
    val_transform = build_transforms(size, mean, std, resize=resize)
    val_set = ImageDataset(val_samples, load, mode, size, val_transform, cfg.data.skip_corrupt, resize)
    train_set.stats = val_set.stats = (list(mean), list(std))
    return train_set, val_set, info


def eval_dataset(cfg, samples, data_info: dict, load=None) -> ImageDataset:
    """A split to evaluate (test), transformed as validation is, with the checkpoint's normalisation."""
    size, resize = data_info["image_size"], Resize.of(data_info, data_info["image_size"])
    transform = build_transforms(size, data_info["mean"], data_info["std"], resize=resize)
    load = load or partial(open_image, size=resize.stored(size))
    return ImageDataset(samples, load, data_info["image_mode"], size, transform, cfg.data.skip_corrupt, resize)


def preload_split(dataset: ImageDataset, cfg, device: torch.device, split: str):
    """(uint8 images decoded once: onto `device`, or mapped from the disk cache; labels; the batched
    transform: augmenting for train)."""
    decoded = partial(decoded_batches, dataset, cfg, f"preload {split}", 256, range(len(dataset)))
    side = dataset.resize.stored(dataset.size)
    shape = (MODE_CHANNELS[dataset.mode], side, side)
    if cfg.data.preload == "disk":
        inputs, targets = cached_images(dataset, cfg, split, decoded, shape)
    else:
        inputs, targets = decode_into_memory(dataset, cfg, device, split, decoded, shape)
    augment = Augmentation.from_config(cfg) if split == "train" else None
    return inputs, targets, BatchTransform(*dataset.stats, augment, dataset.mix, dataset.size)


def decode_into_memory(dataset: ImageDataset, cfg, device: torch.device, split: str, decoded, shape: tuple):
    what = f"{len(dataset)} {split} images at {'x'.join(map(str, shape))} uint8"
    check_fits(len(dataset) * math.prod(shape), device, cfg, what)
    inputs = torch.empty((len(dataset), *shape), dtype=torch.uint8)
    targets = torch.empty(len(dataset), dtype=torch.int64)
    filled = 0
    for images, labels in decoded():
        inputs[filled : filled + len(labels)] = images
        targets[filled : filled + len(labels)] = labels
        filled += len(labels)
    if filled < len(dataset):
        log.warning("preload %s: skipped %d corrupt images", split, dataset.take_skipped())
    inputs, targets = inputs[:filled].to(device), targets[:filled].to(device)
    log.info("preloaded %s into %s memory: %s", what, device.type.upper(), gib(inputs.nbytes))
    return inputs, targets


def predict_inputs(inputs: list[str], data_info: dict, cfg, batch_size: int):
    """(input names, batches preprocessed as validation data was, with the checkpoint's data_info) for predict.py."""
    if not inputs:
        raise DataError("no images given (key=value arguments are config overrides)")
    images = []
    for path in map(Path, inputs):
        if path.is_dir():
            images += image_files(path)
        elif path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            images.append(path)
        elif not path.exists():
            raise DataError(f"input {path} does not exist")
        else:
            raise DataError(f"input {path} is not an image ({', '.join(sorted(IMAGE_EXTENSIONS))}) or a folder")
    dataset = eval_dataset(cfg, [(str(path), 0) for path in images], data_info)  # labels unknown: 0 placeholders
    dataset.skip_corrupt = False  # one prediction per input: an unreadable one is an error
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=cfg.data.num_workers)
    return [str(path) for path in images], (batch for batch, _ in loader)
