"""Train-time augmentation and normalisation, in two implementations that must agree.

`build_transforms` works on one PIL image (lazy loading); `BatchTransform` on a whole uint8 batch
on its device (`data.preload`). Both read the same `Augmentation`, so a setting added there has to
be honoured by both, side by side here. Crops are taken from the image already resized to
`data.image_size`, in both.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from ..errors import ConfigError

ERASED_AREA, ERASED_RATIO = (0.02, 0.33), (0.3, 3.3)  # RandomErasing's defaults (area share; height / width)


@dataclass(frozen=True)
class Augmentation:
    """Drawn per image: a random resized crop keeping a share of the area drawn from `crop_scale`
    (None: no crop) at an aspect ratio drawn log-uniformly from `crop_ratio`; a left-right flip; with
    probability `erasing`, a rectangle of 2-33% of the image set to 0 after normalisation (RandomErasing)."""

    crop_scale: tuple[float, float] | None = None
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # RandomResizedCrop's default (width / height)
    flip: bool = False
    erasing: float = 0.0

    @classmethod
    def from_config(cls, cfg) -> "Augmentation":
        low_high = cfg.data.crop_scale
        if len(low_high) != 2 or not 0.0 < low_high[0] <= low_high[1] <= 1.0:
            raise ConfigError(f"config key 'data.crop_scale' = {low_high!r} must be [low, high], 0 < low <= high <= 1")
        crop_scale = tuple(low_high) if cfg.data.random_resized_crop else None
        return cls(crop_scale=crop_scale, flip=bool(cfg.data.horizontal_flip), erasing=cfg.data.random_erasing)


def decode_transform(image_size: int):
    """PIL image -> uint8 tensor (C, image_size, image_size): what preloading stores."""
    return v2.Compose([v2.Resize((image_size, image_size), antialias=True), v2.PILToTensor()])


def build_transforms(image_size: int, mean, std, augment: Augmentation | None = None):
    """Per image: resize, then (with `augment`) crop and flip, then scale to [0, 1] and normalise."""
    steps = [decode_transform(image_size)]
    if augment is not None and augment.crop_scale is not None:
        crop = v2.RandomResizedCrop(image_size, scale=augment.crop_scale, ratio=augment.crop_ratio, antialias=True)
        steps.append(crop)
    if augment is not None and augment.flip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=mean, std=std)]
    if augment is not None and augment.erasing > 0:
        steps.append(v2.RandomErasing(p=augment.erasing, scale=ERASED_AREA, ratio=ERASED_RATIO, value=0))
    return v2.Compose(steps)


def erase_batch(x: torch.Tensor, probability: float) -> torch.Tensor:
    """The batched twin of RandomErasing on a normalised batch: per image, with `probability`, a rectangle
    of a share of the area drawn from ERASED_AREA, its aspect ratio log-uniform in ERASED_RATIO, set to 0."""
    n, _, h, w = x.shape
    device = x.device
    area = torch.empty(n, device=device).uniform_(*ERASED_AREA) * h * w
    ratio = torch.empty(n, device=device).uniform_(*(math.log(r) for r in ERASED_RATIO)).exp()
    height = (area * ratio).sqrt().round().clamp(1, h)
    width = (area / ratio).sqrt().round().clamp(1, w)
    top = (torch.rand(n, device=device) * (h - height + 1)).floor()
    left = (torch.rand(n, device=device) * (w - width + 1)).floor()
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    inside = (rows >= top.view(n, 1, 1)) & (rows < (top + height).view(n, 1, 1))
    inside = inside & (cols >= left.view(n, 1, 1)) & (cols < (left + width).view(n, 1, 1))
    erased = inside & (torch.rand(n, device=device) < probability).view(n, 1, 1)
    return x.masked_fill(erased.unsqueeze(1), 0.0)


def augment_batch(images: torch.Tensor, augment: Augmentation) -> torch.Tensor:
    """The batched twin of `build_transforms`' crop and flip: a uint8 batch (N, C, H, W) -> float 0..255.

    Each image's crop (and flip) is one affine map, so the whole batch is resampled by one grid_sample.
    """
    x = images.float()
    n, _, h, w = x.shape
    device = x.device
    flip = torch.rand(n, device=device) < 0.5 if augment.flip else torch.zeros(n, dtype=torch.bool, device=device)
    if augment.crop_scale is None:
        return torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    low, high = augment.crop_scale
    area = torch.empty(n, device=device).uniform_(low, high)  # share of the image area
    log_low, log_high = (math.log(r) for r in augment.crop_ratio)
    ratio = torch.empty(n, device=device).uniform_(log_low, log_high).exp()  # crop width / height
    crop_w = (area * ratio * h / w).sqrt().clamp(max=1.0)  # as shares of the width and height
    crop_h = (area / ratio * w / h).sqrt().clamp(max=1.0)
    left = torch.rand(n, device=device) * (1 - crop_w)
    top = torch.rand(n, device=device) * (1 - crop_h)
    # Output coords in [-1, 1] -> input coords of the crop box (align_corners=False: pixel edges).
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = torch.where(flip, -crop_w, crop_w)
    theta[:, 0, 2] = 2 * left + crop_w - 1
    theta[:, 1, 1] = crop_h
    theta[:, 1, 2] = 2 * top + crop_h - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class BatchTransform:
    """Preloaded uint8 batch -> normalised float batch; with `augment`, random crops and flips first."""

    def __init__(self, mean, std, augment: Augmentation | None = None):
        self.augment = augment
        self.mean = torch.tensor(mean).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std).view(1, -1, 1, 1) * 255

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = augment_batch(images, self.augment) if self.augment is not None else images.float()
        if self.mean.device != x.device:  # moved once, not every batch
            self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
        x = (x - self.mean) / self.std
        return erase_batch(x, self.augment.erasing) if self.augment is not None and self.augment.erasing else x
