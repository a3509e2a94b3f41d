"""timm models by name (`model.name=timm/<name>`): their classifier and input channels, pretrained weights from
the Hugging Face hub cache (and the error without network), their normalisation, and the errors for a missing
timm package or an unknown name."""

import sys
from pathlib import Path

import pytest
import torch

from {{ cookiecutter.package_name }}.data import build_datasets
from {{ cookiecutter.package_name }}.errors import ConfigError
from {{ cookiecutter.package_name }}.models import build_model

try:
    import timm
    from huggingface_hub import constants
    from safetensors.torch import save_file
except ModuleNotFoundError:  # the timm extra is not installed: only the test of that error runs
    timm = None
needs_timm = pytest.mark.skipif(timm is None, reason='needs timm: pip install -e ".[timm]"')

# (name, its classifier, the input size to build it for): three ways timm lays out a model.
ARCHITECTURES = [
    ("timm/resnet18", "fc", 32),
    ("timm/mobilenetv3_small_050", "classifier", 32),
    ("timm/vit_tiny_patch16_224", "head", 32),  # a fixed input size: built for 32 (2 x 2 patches)
]
SMALL = "timm/mobilenetv3_small_050"  # the default weights: timm/mobilenetv3_small_050.lamb_in1k on the hub
INSTALL = """model.name='timm/resnet18' needs the optional timm package: pip install -e ".[timm]\""""


def info(channels: int = 3, classes: int = 5, size: int = 32) -> dict:
    return {"num_outputs": classes, "in_channels": channels, "image_size": size}


@needs_timm
@pytest.mark.parametrize(("name", "head", "size"), ARCHITECTURES)
def test_timm_builds_the_classifier_for_the_classes(make_config, name, head, size):
    model = build_model(make_config(**{"model.name": name}), info(classes=5, size=size)).eval()
    assert model.get_submodule(head).out_features == 5
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 5)


@needs_timm
def test_grayscale_images_get_a_one_channel_first_conv_and_the_dropout(make_config):
    model = build_model(make_config(**{"model.name": "timm/resnet18", "model.dropout": 0.3}), info(channels=1))
    assert model.conv1.in_channels == 1 and model.drop_rate == 0.3
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, 32, 32)).shape == (2, 5)


@needs_timm
@pytest.mark.parametrize(("init", "zeroed"), [("kaiming_normal", True), ("default", False)])
def test_model_init_applies_unless_default(make_config, init, zeroed):
    model = build_model(make_config(**{"model.name": "timm/resnet18", "model.init": init}), info())
    assert bool((model.fc.bias == 0).all()) == zeroed  # named schemes zero the biases; timm's own init does not


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face hub cache, offline: what HF_HUB_CACHE and HF_HUB_OFFLINE=1 set (read at import)."""
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def put_in_cache(cache: Path, repo: str, file: str, state: dict) -> None:
    """`file` of hub repo `repo` as a download leaves it: models--org--name/snapshots/<commit>/, refs/main."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "snapshots" / commit).mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    save_file({key: value.contiguous() for key, value in state.items()}, folder / "snapshots" / commit / file)


@needs_timm
def test_pretrained_weights_load_from_the_hub_cache_and_set_the_preprocessing(make_config, hub_cache):
    config = timm.models.get_pretrained_cfg(SMALL.removeprefix("timm/"))
    reference = timm.create_model(SMALL.removeprefix("timm/"), num_classes=1000).state_dict()
    put_in_cache(hub_cache, config.hf_hub_id, "model.safetensors", reference)
    cfg = make_config(**{"model.name": SMALL, "model.pretrained": True, "data.image_size": 0})
    model = build_model(cfg, info())
    for key, value in reference.items():
        if not key.startswith("classifier."):  # the new 5-class head
            assert torch.equal(model.state_dict()[key], value), key
    # The images are normalised as the weights were trained, at their input size (data.image_size=0).
    data_info = build_datasets(cfg)[2]
    mean, std = list(config.mean), list(config.std)
    if data_info["in_channels"] == 1:  # grayscale data (MNIST): the average of the RGB values
        mean, std = [sum(mean) / 3], [sum(std) / 3]
    assert data_info["mean"] == pytest.approx(mean) and data_info["std"] == pytest.approx(std)
    assert data_info["image_size"] == cfg.data.image_size == config.input_size[-1] == 224


@needs_timm
def test_without_network_the_error_names_the_repo_and_the_cache(make_config, hub_cache):
    cfg = make_config(**{"model.name": SMALL, "model.pretrained": True})
    with pytest.raises(ConfigError) as err:
        build_model(cfg, info())
    message = str(err.value)
    assert "cannot download the timm/mobilenetv3_small_050 weights" in message
    assert "timm/mobilenetv3_small_050.lamb_in1k (model.safetensors)" in message and str(hub_cache) in message
    assert "hf download timm/mobilenetv3_small_050.lamb_in1k model.safetensors --cache-dir DIR" in message
    assert "model.weights=PATH" in message and "model.pretrained=false" in message


def test_without_timm_the_error_says_how_to_install_it(make_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` fails as if it were not installed
    with pytest.raises(ConfigError) as err:
        build_model(make_config(**{"model.name": "timm/resnet18"}), info())
    assert str(err.value) == INSTALL
    with pytest.raises(ConfigError) as err:  # pretrained: the data's preprocessing asks first
        build_datasets(make_config(**{"model.name": "timm/resnet18", "model.pretrained": True}))
    assert str(err.value) == INSTALL
    # Other names never need timm, not even for the close matches of a typo.
    assert build_model(make_config(**{"model.name": "resnet18", "model.dropout": 0.0}), info()).fc.out_features == 5
    with pytest.raises(ConfigError, match="'resnet1' is not a model here; did you mean resnet18"):
        build_model(make_config(**{"model.name": "resnet1"}), info())


@needs_timm
def test_unknown_timm_names_get_the_close_matches(make_config):
    with pytest.raises(ConfigError, match=r"'timm/resnet19' is not a model here; did you mean timm/resnet18\b"):
        build_model(make_config(**{"model.name": "timm/resnet19"}), info())
    with pytest.raises(ConfigError, match=r"'timm/zzzz' is not a model here; no close match among \d+ known names$"):
        build_model(make_config(**{"model.name": "timm/zzzz"}), info())
    with pytest.raises(ConfigError, match="'timm/resnet19' is not a timm model with pretrained weights; did you mean"):
        build_datasets(make_config(**{"model.name": "timm/resnet19", "model.pretrained": True}))
    with pytest.raises(ConfigError, match="'timm/botnet50ts_256' is not a timm model with pretrained weights"):
        build_datasets(make_config(**{"model.name": "timm/botnet50ts_256", "model.pretrained": True}))
