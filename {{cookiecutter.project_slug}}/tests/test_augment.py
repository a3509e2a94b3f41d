"""Image recipe keys: data.auto_augment and data.mixup_alpha / data.cutmix_alpha, per image and batched."""

import random
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.data.augment import (
    AUTO_AUGMENT,
    Augmentation,
    BatchTransform,
    batch_mixing,
    build_transforms,
    decode_transform,
)
from {{ cookiecutter.package_name }}.data.preload import PreloadedLoader
from {{ cookiecutter.package_name }}.data.resumable import resume_at
from {{ cookiecutter.package_name }}.errors import ConfigError

SIZE = 16  # FAST data.image_size
MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]


def random_image() -> Image.Image:
    return Image.fromarray(torch.randint(0, 256, (SIZE, SIZE, 3), dtype=torch.uint8).numpy())


@pytest.mark.parametrize("policy", [name for name in AUTO_AUGMENT if name != "none"])
def test_auto_augment_draws_per_image_in_both_twins(make_config, policy):
    torch.manual_seed(0)
    augment = Augmentation.from_config(make_config(**{"data.auto_augment": policy}))
    assert augment.auto_augment == policy and augment.policy() is not None
    plain = Augmentation(auto_augment=policy)  # no crop, flip or erasing: the policy alone changes pixels
    image = random_image()
    reference = build_transforms(SIZE, MEAN, STD)(image)
    per_image = [build_transforms(SIZE, MEAN, STD, plain)(image) for _ in range(12)]
    pixels = decode_transform(SIZE)(image).repeat(12, 1, 1, 1)
    batched = BatchTransform(MEAN, STD, plain)(pixels, torch.zeros(12, dtype=torch.int64))[0]
    for outputs in (per_image, list(batched)):
        assert all(x.shape == reference.shape and x.dtype == torch.float32 for x in outputs)
        changed = [not torch.allclose(x, reference, atol=1e-5) for x in outputs]
        assert any(changed)  # ops drawn per image: not all the same, not all untouched
        assert len({tuple(x.flatten().tolist()) for x in outputs}) > 2
    assert Augmentation().policy() is None  # none: no policy at all


def test_mixing_is_off_by_default_and_mixes_images_with_their_labels(make_config):
    assert batch_mixing(make_config(), 3) is None
    torch.manual_seed(0)
    images, labels = torch.rand(8, 3, SIZE, SIZE), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    both = {"data.mixup_alpha": 0.2, "data.cutmix_alpha": 1.0}
    for alphas in ({"data.mixup_alpha": 0.4}, {"data.cutmix_alpha": 1.0}, both):
        mix = batch_mixing(make_config(**alphas), 3)
        for _ in range(4):
            mixed, targets = mix(images, labels)
            assert mixed.shape == images.shape and targets.shape == (8, 3)
            torch.testing.assert_close(targets.sum(1), torch.ones(8))
            # Each image is a blend of itself and its neighbour in the batch (torchvision rolls the batch by one).
            share = targets[torch.arange(8), labels]
            assert bool((share >= 0.5 - 1e-6).all() | (share <= 0.5 + 1e-6).all())


def mixing_kind(images, labels, mixed, targets) -> str:
    """`mixup` when every pixel is the blend lam x image + (1 - lam) x its neighbour (lam: the label's share),
    `cutmix` when every pixel is one of the two and the pasted box covers 1 - lam of the image."""
    lam = targets[torch.arange(len(labels)), labels]
    other = images.roll(1, 0)
    if torch.allclose(mixed, lam.view(-1, 1, 1, 1) * images + (1 - lam.view(-1, 1, 1, 1)) * other, atol=1e-5):
        return "mixup"
    own = (mixed == images).all(1)  # pixel positions copied from the image itself
    assert bool(((mixed == images) | (mixed == other)).all()), "neither a blend nor a pasted box"
    torch.testing.assert_close(own.double().mean((1, 2)), lam.double(), atol=1e-6, rtol=0)
    return "cutmix"


def test_mixup_blends_and_cutmix_pastes(make_config):
    torch.manual_seed(0)
    images, labels = torch.rand(8, 3, SIZE, SIZE), torch.randperm(8)  # 8 classes: every share is one label's
    kinds = {}
    for name, alphas in {"mixup": {"data.mixup_alpha": 0.4}, "cutmix": {"data.cutmix_alpha": 1.0}}.items():
        mix = batch_mixing(make_config(**alphas), 8)
        kinds[name] = {mixing_kind(images, labels, *mix(images, labels)) for _ in range(6)}
    assert kinds == {"mixup": {"mixup"}, "cutmix": {"cutmix"}}
    both = batch_mixing(make_config(**{"data.mixup_alpha": 0.4, "data.cutmix_alpha": 1.0}), 8)
    assert {mixing_kind(images, labels, *both(images, labels)) for _ in range(20)} == {"mixup", "cutmix"}


def test_train_batches_are_mixed_and_val_batches_are_not(make_config):
    for preload in ("false", "cpu"):
        cfg = make_config(**{"data.mixup_alpha": 0.4, "data.cutmix_alpha": 1.0, "data.preload": preload})
        train_loader, val_loader, info = build_dataloaders(cfg)
        assert isinstance(train_loader, PreloadedLoader) == (preload == "cpu")
        inputs, targets = next(iter(train_loader))
        assert targets.shape == (len(inputs), info["num_classes"]) and targets.dtype == torch.float32
        torch.testing.assert_close(targets.sum(1), torch.ones(len(inputs)))
        _, val_targets = next(iter(val_loader))
        assert val_targets.ndim == 1 and val_targets.dtype == torch.int64  # class ids: validation is never mixed


@pytest.mark.parametrize("key", ["data.mixup_alpha", "data.cutmix_alpha"])
def test_negative_alphas_are_refused(make_config, key):
    with pytest.raises(ConfigError, match=key):
        make_config(**{key: -0.5})


def drawing_from_random_and_numpy(transform, sample):
    """A user's transform that draws from Python's `random` and NumPy's global generator, not from torch."""
    return transform(sample) + random.random() + float(np.random.rand())


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_transform_drawing_from_random_and_numpy_replays_after_a_mid_epoch_resume(make_config, num_workers):
    settings = {"data.num_workers": num_workers, "data.batch_size": 4, "data.preload": False}  # per-sample transforms
    loader = build_dataloaders(make_config(**settings))[0]
    loader.dataset.transform = partial(drawing_from_random_and_numpy, loader.dataset.transform)

    def epoch(skipped: int) -> list[torch.Tensor]:
        loader.generator.manual_seed(7)  # as Trainer.run_epoch seeds each epoch
        resume_at(loader, skipped)
        return [inputs for inputs, _ in loader]

    whole, resumed, again = epoch(0), epoch(3), epoch(0)
    assert len(resumed) == len(whole) - 3 >= 2
    for a, b in zip(whole[3:], resumed, strict=True):
        assert torch.equal(a, b)  # the same draws for the same samples, wherever the epoch starts
    assert all(torch.equal(a, b) for a, b in zip(whole, again, strict=True))  # and in every run
