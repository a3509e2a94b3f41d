"""Train-time augmentation and normalisation, in two implementations that must agree.

`build_transforms` works on one PIL image (lazy loading); `BatchTransform` on a whole uint8 batch
on its device (`data.preload`). Both read the same `Augmentation`, so a setting added there has to
be honoured by both, side by side here. `Resize` says how a decoded image becomes `data.image_size`
square (squashed, or as pretrained weights expect); the batched twin crops from the stored square.
`batch_mixing` (mixup / cutmix) works on batches in both: in the lazy loader's collate, and in
`BatchTransform`.
"""

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from ..errors import ConfigError

# The CPU crops images of this size and more one by one (resize_boxes), smaller ones with one grid_sample: per batch
# of 64, 64 px 5.3 vs 4.4 ms, 128 px 6.6 vs 12.3 ms (~40 us per interpolate; grid_sample grows with the pixels).
LOOP_FROM_PIXELS = 96 * 96
ERASED_AREA = (0.02, 0.33)  # RandomErasing's defaults: the area share
ERASED_RATIO = (0.3, 3.3)  # and height / width
# data.auto_augment -> a policy of colour and geometry ops drawn per image, on uint8 pixels, with torchvision's
# defaults (those of its classification references); TrivialAugment has no knobs and is a strong default.
AUTO_AUGMENT = {
    "none": None,
    "trivialaugment": v2.TrivialAugmentWide,
    "randaugment": v2.RandAugment,
    "autoaugment": partial(v2.AutoAugment, v2.AutoAugmentPolicy.IMAGENET),
}


INTERPOLATION = {"bilinear": v2.InterpolationMode.BILINEAR, "bicubic": v2.InterpolationMode.BICUBIC}


@dataclass(frozen=True)
class Resize:
    """How a decoded image becomes image_size x image_size. `side` 0 (own models, trained from scratch): squashed to
    that square, which keeps every pixel; training crops from the square. `side` > 0 (pretrained weights), as
    torchvision's presets train and score them (`weights.transforms()`): the shorter side resized to `side` with the
    weights' `interpolation`, aspect kept, then the centre crop; training crops RandomResizedCrop from the decoded
    image. Preloading stores the centre `side` x `side` square, a margin above the crop, as FFCV stores."""

    side: int = 0
    interpolation: str = "bilinear"

    @classmethod
    def of(cls, info: dict, image_size: int) -> "Resize":
        """From a checkpoint's data_info, or the pretrained weights' preprocessing, scaled to `image_size`; squashed
        without a "resize_size" there (own models, checkpoints from before it was recorded)."""
        side = info.get("resize_size", 0)
        return cls(side * image_size // info["image_size"] if side else 0, info.get("interpolation", "bilinear"))

    def stored(self, image_size: int) -> int:
        """The side of a preloaded image."""
        return self.side or image_size


SQUASH = Resize()


@dataclass(frozen=True)
class Augmentation:
    """Drawn per image: a random resized crop keeping a share of the area drawn from `crop_scale`
    (None: no crop) at an aspect ratio drawn log-uniformly from `crop_ratio`; a left-right flip; with
    probability `erasing`, a rectangle of 2-33% of the image set to 0 after normalisation (RandomErasing);
    after the flip, the `auto_augment` policy (AUTO_AUGMENT)."""

    crop_scale: tuple[float, float] | None = None
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # RandomResizedCrop's default (width / height)
    flip: bool = False
    erasing: float = 0.0
    auto_augment: str = "none"

    @classmethod
    def from_config(cls, cfg) -> "Augmentation":
        low_high = cfg.data.crop_scale
        if len(low_high) != 2 or not 0.0 < low_high[0] <= low_high[1] <= 1.0:
            raise ConfigError(f"config key 'data.crop_scale' = {low_high!r} must be [low, high], 0 < low <= high <= 1")
        crop_scale = tuple(low_high) if cfg.data.random_resized_crop else None
        flip = bool(cfg.data.horizontal_flip)
        erasing = cfg.data.random_erasing
        return cls(crop_scale=crop_scale, flip=flip, erasing=erasing, auto_augment=cfg.data.auto_augment)

    def policy(self):
        """The auto_augment policy as a transform of one uint8 image; None for `none`."""
        policy = AUTO_AUGMENT[self.auto_augment]
        return None if policy is None else policy()


def batch_mixing(cfg, num_classes: int):
    """`data.mixup_alpha` / `data.cutmix_alpha` > 0: a transform of a train batch (images, class ids) ->
    (mixed images, class probabilities), for the loss. MixUp blends each image with another of the batch,
    CutMix pastes a box of it; the share is drawn from Beta(alpha, alpha). With both on, each batch uses one
    of them at random. None when both are 0."""
    mixes = [
        mix(alpha=alpha, num_classes=num_classes)
        for mix, alpha in ((v2.MixUp, cfg.data.mixup_alpha), (v2.CutMix, cfg.data.cutmix_alpha))
        if alpha > 0
    ]
    return v2.RandomChoice(mixes) if len(mixes) > 1 else (mixes[0] if mixes else None)


def decode_transform(image_size: int, resize: Resize = SQUASH):
    """PIL image -> uint8 tensor (C, side, side), side = `resize.stored(image_size)`: what preloading stores."""
    if not resize.side:
        return v2.Compose([v2.Resize((image_size, image_size), antialias=True), v2.PILToTensor()])
    shorter = v2.Resize(resize.side, INTERPOLATION[resize.interpolation], antialias=True)
    return v2.Compose([shorter, v2.CenterCrop(resize.side), v2.PILToTensor()])


class Normalize255:
    """uint8 pixels -> float32 (x - 255 mean) / (255 std): v2.ToDtype(scale=True) + v2.Normalize in one pass, for
    one image (C, H, W) or a batch (N, C, H, W). The image is made contiguous first: PILToTensor gives a
    channels-last view. Kept (benchmarks/image_decode.py, 224 px): 0.16-0.41 ms vs 0.22-0.47 ms for contiguous + ToDtype
    + Normalize, ~1% of a drafted photo's 7 ms; and the batched twin shares it, so lazy and preloaded batches agree."""

    def __init__(self, mean, std):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1) * 255
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1) * 255

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.mean.device != pixels.device:  # moved once, not every batch
            self.mean = self.mean.to(pixels.device)
            self.std = self.std.to(pixels.device)
        return (pixels.contiguous().float() - self.mean).div_(self.std)


def eval_pixels(image_size: int, resize: Resize = SQUASH):
    """PIL image -> uint8 tensor (C, image_size, image_size) as validation sees it (see `Resize`)."""
    if not resize.side:
        return decode_transform(image_size)
    shorter = v2.Resize(resize.side, INTERPOLATION[resize.interpolation], antialias=True)
    return v2.Compose([shorter, v2.CenterCrop(image_size), v2.PILToTensor()])


def build_transforms(image_size: int, mean, std, augment: Augmentation | None = None, resize: Resize = SQUASH):
    """Per image: resize (`Resize`), then (with `augment`) crop and flip, then scale to [0, 1] and normalise."""
    crop_scale = augment.crop_scale if augment is not None else None
    if resize.side and crop_scale is not None:  # from the decoded image, as the pretrained weights were trained
        mode = INTERPOLATION[resize.interpolation]
        steps = [v2.RandomResizedCrop(image_size, crop_scale, augment.crop_ratio, mode, antialias=True)]
        steps.append(v2.PILToTensor())
    else:
        steps = [eval_pixels(image_size, resize)]
    if not resize.side and crop_scale is not None:
        steps.append(v2.RandomResizedCrop(image_size, scale=crop_scale, ratio=augment.crop_ratio, antialias=True))
    if augment is not None and augment.flip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    if augment is not None and (policy := augment.policy()) is not None:
        steps.append(policy)
    steps.append(Normalize255(mean, std))
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


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The centre size x size of a stored batch, at CenterCrop's offsets."""
    top, left = (round((side - size) / 2) for side in x.shape[-2:])
    return x[..., top : top + size, left : left + size]


def augment_batch(images: torch.Tensor, augment: Augmentation, size: int) -> torch.Tensor:
    """The batched twin of `build_transforms`' crop and flip: a uint8 batch (N, C, H, W) -> float 0..255 at
    size x size (crops from the whole stored square, or without a crop its centre)."""
    n, _, h, w = images.shape
    device = images.device
    flip = torch.rand(n, device=device) < 0.5 if augment.flip else torch.zeros(n, dtype=torch.bool, device=device)
    if augment.crop_scale is None:
        x = centre_crop(images, size).float()
        return torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    x = images.float()
    low, high = augment.crop_scale
    area = torch.empty(n, device=device).uniform_(low, high)  # share of the image area
    log_low, log_high = (math.log(r) for r in augment.crop_ratio)
    ratio = torch.empty(n, device=device).uniform_(log_low, log_high).exp()  # crop width / height
    crop_w = (area * ratio * h / w).sqrt().clamp(max=1.0)  # as shares of the width and height
    crop_h = (area / ratio * w / h).sqrt().clamp(max=1.0)
    left = torch.rand(n, device=device) * (1 - crop_w)
    top = torch.rand(n, device=device) * (1 - crop_h)
    resample = resize_boxes if device.type == "cpu" and h * w >= LOOP_FROM_PIXELS else sample_boxes
    return resample(x, left, top, crop_w, crop_h, flip, size)


def sample_boxes(x: torch.Tensor, left, top, crop_w, crop_h, flip, size: int) -> torch.Tensor:
    """Each image's crop box (shares of its width and height) resampled to size x size (bilinear), flipped where
    `flip`, in one kernel for the batch: each crop and flip is one affine map, for one grid_sample."""
    n = len(x)
    # Output coords in [-1, 1] -> input coords of the crop box (align_corners=False: pixel edges).
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = torch.where(flip, -crop_w, crop_w)
    theta[:, 0, 2] = 2 * left + crop_w - 1
    theta[:, 1, 1] = crop_h
    theta[:, 1, 2] = 2 * top + crop_h - 1
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def resize_boxes(x: torch.Tensor, left, top, crop_w, crop_h, flip, size: int) -> torch.Tensor:
    """Each image's crop box (shares of its width and height) rounded to whole pixels, as RandomResizedCrop takes
    it, resized to size x size (bilinear), flipped where `flip`: one interpolate per image, which the CPU
    runs up to 3x faster than `sample_boxes` on images of LOOP_FROM_PIXELS and more."""
    n, _, h, w = x.shape
    box_w = (crop_w * w).round().clamp(1, w).long()
    box_h = (crop_h * h).round().clamp(1, h).long()
    box_left = torch.minimum((left * w).round().long(), w - box_w)
    box_top = torch.minimum((top * h).round().long(), h - box_h)
    out = x.new_empty((n, x.shape[1], size, size))
    boxes = zip(box_left.tolist(), box_top.tolist(), box_w.tolist(), box_h.tolist(), flip.tolist(), strict=True)
    for i, (x0, y0, width, height, flipped) in enumerate(boxes):
        box = x[i : i + 1, :, y0 : y0 + height, x0 : x0 + width]
        resized = F.interpolate(box, size=(size, size), mode="bilinear", align_corners=False)[0]
        out[i] = resized.flip(-1) if flipped else resized
    return out


class BatchTransform:
    """Preloaded (uint8 batch, class ids) -> (normalised float batch at `size`, targets): the centre crop; with
    `augment`, random crops, flips, the auto_augment policy and erasing, as `build_transforms` does per image; with
    `mix`, mixup/cutmix. `size` None: the stored size."""

    def __init__(self, mean, std, augment: Augmentation | None = None, mix=None, size: int | None = None):
        self.augment = augment
        self.mix = mix
        self.size = size
        self.policy = augment.policy() if augment is not None else None
        self.normalize = Normalize255(mean, std)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.size or images.shape[-1]
        augment = self.augment
        x = augment_batch(images, augment, size) if augment is not None else centre_crop(images, size).float()
        if self.policy is not None:  # one image at a time: the policy draws its ops per call
            pixels = x.round_().clamp_(0, 255).to(torch.uint8)
            x = torch.stack([self.policy(image) for image in pixels]).float()
        x = self.normalize(x)
        if self.augment is not None and self.augment.erasing:
            x = erase_batch(x, self.augment.erasing)
        return self.mix(x, targets) if self.mix is not None and len(targets) else (x, targets)
