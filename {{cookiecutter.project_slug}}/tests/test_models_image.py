"""Image models and settings (image dataset types only): input sizes and channels, the CNN head, bad settings."""

import itertools

import pytest
import torch
import torch.nn as nn

from {{ cookiecutter.package_name }}.config import ConfigError
from {{ cookiecutter.package_name }}.models import MODELS, build_model
from {{ cookiecutter.package_name }}.models.shapes import conv_output_size, feature_map_size

NUM_CLASSES = 3


def data_info(image_size=32, in_channels=3) -> dict:
    return {"num_outputs": NUM_CLASSES, "in_channels": in_channels, "image_size": image_size}


def inputs(info: dict, batch=2) -> torch.Tensor:
    return torch.randn(batch, info["in_channels"], info["image_size"], info["image_size"])


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize(("image_size", "in_channels"), [(17, 1), (40, 3)])
def test_other_sizes_and_grayscale(make_config, name, image_size, in_channels):
    info = data_info(image_size, in_channels)
    model = build_model(make_config(**{"model.name": name}), info).eval()
    assert model(inputs(info)).shape == (2, NUM_CLASSES)


def test_head_is_sized_from_the_input_size(make_config):
    cfg = make_config(**{"model.name": "simple_cnn", "model.channels": [4, 8]})
    for size, side in [(16, 4), (17, 4), (33, 8), (64, 16)]:
        model = build_model(cfg, data_info(size))
        assert model.classifier.fc.in_features == 8 * side * side


def test_image_size_too_small_for_the_conv_blocks(make_config):
    cfg = make_config(**{"model.name": "simple_cnn", "model.channels": [4, 8, 16], "data.image_size": 4})
    with pytest.raises(ConfigError, match="image_size"):
        build_model(cfg, data_info(cfg.data.image_size))
    build_model(cfg, data_info(8))  # 8 -> 4 -> 2 -> 1 is fine


@pytest.mark.parametrize("size", [8, 15, 16, 33])
def test_feature_map_size_of_the_cnn(make_config, size):
    model = build_model(make_config(**{"model.name": "simple_cnn", "model.channels": [4, 8, 4]}), data_info(size))
    assert feature_map_size(model.features, size) == model.features(inputs(data_info(size))).shape[-2:]


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ({"data.crop_scale": [0.5]}, "'data.crop_scale'"),
        ({"data.crop_scale": [0.9, 0.5]}, "'data.crop_scale'"),
        ({"data.crop_scale": [0, 1]}, "'data.crop_scale'"),
        ({"data.mean": [0.5]}, "'data.mean'"),  # std missing
        ({"data.mean": [0.5, 0.5], "data.std": [0.2, 0.2]}, "'data.mean'"),  # one value per channel
        ({"data.image_mode": "L", "data.mean": [0.5], "data.std": [0]}, "'data.std'"),
    ],
)
def test_bad_image_settings_are_config_errors_before_training(make_config, setting, named):
    from {{ cookiecutter.package_name }}.data import build_dataloaders

    with pytest.raises(ConfigError) as err:
        build_dataloaders(make_config(**setting))
    assert named in str(err.value)


@pytest.mark.parametrize(("key", "value"), [("data.image_size", -1), ("data.stats_images", 0)])
def test_image_sizes_must_be_positive(make_config, key, value):
    with pytest.raises(ConfigError, match=key):
        make_config(**{key: value})


# ---- conv arithmetic -------------------------------------------------------------------------------------
SIZES = [(5, 8), (7, 7), (13, 10)]


def test_conv_output_size_matches_nn_conv2d():
    kernels, strides, paddings, dilations = [1, 3, (3, 5)], [1, 2, (2, 1)], [0, 1, (1, 2)], [1, 2, (2, 1)]
    checked = 0
    for size, k, s, p, d in itertools.product(SIZES, kernels, strides, paddings, dilations):
        expected = conv_output_size(size, k, s, p, d)
        conv = nn.Conv2d(1, 1, kernel_size=k, stride=s, padding=p, dilation=d)
        if min(expected) < 1:
            with pytest.raises(RuntimeError):
                conv(torch.zeros(1, 1, *size))
            continue
        assert conv(torch.zeros(1, 1, *size)).shape[-2:] == expected, (size, k, s, p, d)
        checked += 1
    assert checked > 100


def test_conv_output_size_on_ints():
    assert conv_output_size(32, 3, padding=1) == 32
    assert conv_output_size(32, 3, stride=2, padding=1) == 16
    assert conv_output_size(7, 3, dilation=2) == 3  # effective kernel 5
    assert conv_output_size((10, 10), 3, padding=(1, 2)) == (10, 12)  # pads H by 1 and W by 2


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_conv_output_size_matches_pools(ceil_mode):
    checked = 0
    for size, k, s, p, d in itertools.product(SIZES, [2, 3, (2, 3)], [1, 2, 3], [0, 1], [1, 2]):
        expected = conv_output_size(size, k, s, p, d, ceil_mode=ceil_mode)
        pools = [nn.MaxPool2d(k, s, p, d, ceil_mode=ceil_mode)]
        if d == 1:
            pools.append(nn.AvgPool2d(k, s, p, ceil_mode=ceil_mode))
        for pool in pools:
            out = pool(torch.zeros(1, 1, *size))
            assert out.shape[-2:] == expected, (type(pool).__name__, size, k, s, p, d, ceil_mode)
            checked += 1
    assert checked > 100


def test_feature_map_size_matches_a_real_forward():
    stacks = [
        nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(
            nn.Conv2d(1, 2, (3, 5), stride=(2, 1), padding=(1, 2), dilation=2),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(2, 2, 3, padding="same"),
            nn.AvgPool2d(2),
            nn.Conv2d(2, 2, 1, padding="valid"),
        ),
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, ceil_mode=True), nn.AdaptiveAvgPool2d((2, None))),
    ]
    for stack, size in itertools.product(stacks, [(31, 31), (32, 45), (20, 21)]):
        assert feature_map_size(stack, size) == stack(torch.zeros(1, 1, *size)).shape[-2:], (stack, size)
    assert feature_map_size(stacks[0], 16) == (8, 8)  # an int means a square input
