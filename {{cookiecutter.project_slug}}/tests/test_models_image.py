"""Image models and settings (image dataset types only): input sizes and channels, the CNN head, bad settings."""

import pytest
import torch

from {{ cookiecutter.package_name }}.config import ConfigError
from {{ cookiecutter.package_name }}.models import MODELS, build_model, feature_map_size

NUM_CLASSES = 3


def data_info(image_size=32, in_channels=3) -> dict:
    return {"num_classes": NUM_CLASSES, "in_channels": in_channels, "image_size": image_size}


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


@pytest.mark.parametrize("key", ["data.image_size", "data.stats_images"])
def test_image_sizes_must_be_positive(make_config, key):
    with pytest.raises(ConfigError, match=key):
        make_config(**{key: 0})
