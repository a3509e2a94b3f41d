"""Image decoding and transforms shared by the image dataset types.

`__getitem__` returns what the model trains on; the steps are explicit because real
data is messy: EXIF orientation is applied, every PIL mode (L, LA, P, RGBA, I;16,
CMYK, ...) is converted to one configured mode (RGB by default, in RGB order, not
OpenCV's BGR), and every size is resized to `data.image_size`. A corrupt or
truncated file is a `DataError` naming it, or, with `data.skip_corrupt`, a logged skip.
"""

import logging
import math
import multiprocessing
import warnings

import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision.transforms import v2
from tqdm import tqdm

from ..utils.logs import show_progress
from .common import DataError
from .preload import check_fits, gib

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MODE_CHANNELS = {"RGB": 3, "L": 1}
# RandomResizedCrop's default aspect-ratio range, used by the batched (preload) variant too.
CROP_RATIO = (3 / 4, 4 / 3)


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
    return image.convert(mode)  # CMYK, YCbCr, P, 1, ... through PIL's own matrices


def open_image(path) -> Image.Image:
    """Decode a file fully (a truncated file fails here, not later), upright per its EXIF tag."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise DataError(f"cannot read image {path}: {err}") from None


class ImageDataset(Dataset):
    """(source, label) pairs, decoded lazily: memory grows with the list, not the images.

    `load(source)` returns a PIL image (a path for files, an index for torchvision datasets).
    """

    def __init__(self, samples, load, mode: str, transform, skip_corrupt: bool = False):
        self.samples = samples
        self.load = load
        self.mode = mode
        self.transform = transform
        self.skip_corrupt = skip_corrupt
        # Shared with DataLoader worker processes, so skips made there are counted too.
        self.skipped = multiprocessing.Value("i", 0) if skip_corrupt else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        source, label = self.samples[index]
        try:
            image = to_mode(self.load(source), self.mode)
        except DataError as err:
            if not self.skip_corrupt:
                raise
            log.warning("skipping %s (data.skip_corrupt is on)", err)
            with self.skipped.get_lock():
                self.skipped.value += 1
            return None  # dropped by collate_skipping_none
        # PIL image in, tensor (C, H, W) out: the transform does the conversion.
        return self.transform(image), label

    def take_skipped(self) -> int:
        """Corrupt samples skipped since the last call."""
        if self.skipped is None:
            return 0
        with self.skipped.get_lock():
            count, self.skipped.value = self.skipped.value, 0
        return count

    def with_transform(self, transform) -> "ImageDataset":
        view = ImageDataset(self.samples, self.load, self.mode, transform, self.skip_corrupt)
        view.skipped = self.skipped
        return view


def collate_skipping_none(batch):
    """default_collate without the samples skipped as corrupt; an all-skipped batch is empty."""
    batch = [sample for sample in batch if sample is not None]
    if not batch:
        return torch.empty(0), torch.empty(0, dtype=torch.int64)
    return default_collate(batch)


def decode_transform(image_size: int):
    """PIL image -> uint8 tensor (C, image_size, image_size): what preloading stores."""
    return v2.Compose([v2.Resize((image_size, image_size), antialias=True), v2.PILToTensor()])


def build_transforms(cfg, mean, std, train: bool):
    """Resize, then (train only) augment, then scale to [0, 1] and normalise.

    Crops are taken from the resized image so that the lazy and the preloaded paths
    (which store resized images) augment alike.
    """
    size = cfg.data.image_size
    steps = [v2.Resize((size, size), antialias=True), v2.PILToTensor()]
    if train and cfg.data.random_resized_crop:
        steps.append(v2.RandomResizedCrop(size, scale=tuple(cfg.data.crop_scale), ratio=CROP_RATIO, antialias=True))
    if train and cfg.data.horizontal_flip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=mean, std=std)]
    return v2.Compose(steps)


def augment_batch(images: torch.Tensor, cfg) -> torch.Tensor:
    """Per-sample random resized crop and flip of a uint8 batch (N, C, H, W), on its own device.

    The batched twin of `build_transforms(train=True)` for preloaded data; returns float 0..255.
    Each crop (and flip) is one affine map, so the whole batch is resampled by one grid_sample.
    """
    x = images.float()
    n, _, h, w = x.shape
    device = x.device
    flip = torch.rand(n, device=device) < 0.5 if cfg.data.horizontal_flip else torch.zeros(n, dtype=torch.bool)
    if not cfg.data.random_resized_crop:
        return torch.where(flip.to(device).view(n, 1, 1, 1), x.flip(-1), x)
    low, high = cfg.data.crop_scale
    area = torch.empty(n, device=device).uniform_(low, high)  # share of the image area
    log_low, log_high = (math.log(r) for r in CROP_RATIO)
    ratio = torch.empty(n, device=device).uniform_(log_low, log_high).exp()  # crop width / height
    crop_w = (area * ratio * h / w).sqrt().clamp(max=1.0)  # as shares of the width and height
    crop_h = (area / ratio * w / h).sqrt().clamp(max=1.0)
    left = torch.rand(n, device=device) * (1 - crop_w)
    top = torch.rand(n, device=device) * (1 - crop_h)
    # Output coords in [-1, 1] -> input coords of the crop box (align_corners=False: pixel edges).
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = torch.where(flip.to(device), -crop_w, crop_w)
    theta[:, 0, 2] = 2 * left + crop_w - 1
    theta[:, 1, 1] = crop_h
    theta[:, 1, 2] = 2 * top + crop_h - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def compute_mean_std(dataset: ImageDataset, cfg, max_images: int) -> tuple[list[float], list[float]]:
    """Per-channel mean/std of up to `max_images` (seeded choice) train images at data.image_size."""
    n = min(len(dataset), max_images)
    ids = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed))[:n].tolist()
    view = torch.utils.data.Subset(dataset.with_transform(decode_transform(cfg.data.image_size)), ids)
    total = total_sq = None
    count = 0
    loader = DataLoader(view, batch_size=64, num_workers=cfg.data.num_workers, collate_fn=collate_skipping_none)
    bar = tqdm(loader, desc="computing mean/std", leave=False, disable=not show_progress(cfg.trainer.progress_bar))
    for images, _ in bar:
        if images.numel() == 0:
            continue
        x = images.double().div_(255).transpose(0, 1).flatten(1)  # (C, pixels)
        total = x.sum(1) if total is None else total + x.sum(1)
        total_sq = x.square().sum(1) if total_sq is None else total_sq + x.square().sum(1)
        count += x.shape[1]
    dataset.take_skipped()  # files skipped here are reported again when training reads them
    if not count:
        raise DataError("no readable train images to compute data.mean/data.std from")
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt().clamp_min(1e-3)  # a flat channel: no divide by 0
    return [round(v, 4) for v in mean.tolist()], [round(v, 4) for v in std.tolist()]


def image_datasets(cfg, train_samples, val_samples, load, classes, data_info=None, known_stats=None, mode=None):
    """(train_set, val_set, data_info) for any image source.

    Normalisation comes from `data_info` (a checkpoint), else `data.mean`/`data.std`,
    else `known_stats` (a torchvision dataset's published values), else the train images.
    """
    mode = data_info["image_mode"] if data_info else (mode or cfg.data.image_mode)
    train_set = ImageDataset(train_samples, load, mode, None, cfg.data.skip_corrupt)
    if data_info is not None:
        mean, std = data_info["mean"], data_info["std"]
    elif cfg.data.mean:
        mean, std = list(cfg.data.mean), list(cfg.data.std)
    elif known_stats is not None:
        mean, std = known_stats
    else:
        mean, std = compute_mean_std(train_set, cfg, cfg.data.stats_images)
        used = min(len(train_set), cfg.data.stats_images)
        log.info("data.mean=%s data.std=%s computed from %d train images", mean, std, used)
    info = {
        "classes": list(classes),
        "num_classes": len(classes),
        "in_channels": MODE_CHANNELS[mode],
        "image_size": cfg.data.image_size,
        "image_mode": mode,
        "mean": list(mean),
        "std": list(std),
    }
    train_set.transform = build_transforms(cfg, mean, std, train=True)
    val_transform = build_transforms(cfg, mean, std, train=False)
    val_set = ImageDataset(val_samples, load, mode, val_transform, cfg.data.skip_corrupt)
    return train_set, val_set, info


def preload_images(dataset: ImageDataset, cfg, device: torch.device, split: str):
    """Decode every image once (in worker processes) into one uint8 tensor on `device`."""
    size, channels = cfg.data.image_size, MODE_CHANNELS[dataset.mode]
    what = f"{len(dataset)} {split} images at {channels}x{size}x{size} uint8"
    check_fits(len(dataset) * channels * size * size, device, cfg, what)
    inputs = torch.empty((len(dataset), channels, size, size), dtype=torch.uint8)
    targets = torch.empty(len(dataset), dtype=torch.int64)
    view = dataset.with_transform(decode_transform(size))
    loader = DataLoader(view, batch_size=256, num_workers=cfg.data.num_workers, collate_fn=collate_skipping_none)
    filled = 0
    bar = tqdm(loader, desc=f"preload {split}", leave=False, disable=not show_progress(cfg.trainer.progress_bar))
    for images, labels in bar:
        inputs[filled : filled + len(labels)] = images
        targets[filled : filled + len(labels)] = labels
        filled += len(labels)
    if filled < len(dataset):
        log.warning("preload %s: skipped %d corrupt images", split, dataset.take_skipped())
    inputs, targets = inputs[:filled].to(device), targets[:filled].to(device)
    log.info("preloaded %s into %s memory: %s", what, device.type.upper(), gib(inputs.nbytes))
    return inputs, targets


class BatchTransform:
    """Preloaded uint8 batch -> normalised float batch; random crops and flips for train."""

    def __init__(self, cfg, mean, std, train: bool):
        self.cfg = cfg
        self.train = train
        self.mean = torch.tensor(mean).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std).view(1, -1, 1, 1) * 255

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = augment_batch(images, self.cfg) if self.train else images.float()
        if self.mean.device != x.device:  # moved once, not every batch
            self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
        return (x - self.mean) / self.std
