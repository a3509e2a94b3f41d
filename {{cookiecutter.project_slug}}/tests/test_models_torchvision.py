"""torchvision models by name: the generic head and first-conv replacement, pretrained weights from the hub cache
(and the error without network), their normalisation, and `model.weights` from a local file."""

import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torchvision.models import get_model

from {{ cookiecutter.package_name }}.data import build_datasets
from {{ cookiecutter.package_name }}.errors import CheckpointError, ConfigError
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.models.torchvision_models import pretrained_weights

# (name, where its classifier lives, an input size it takes): five ways torchvision lays out a head.
ARCHITECTURES = [
    ("resnet18", "fc", 32),
    ("mobilenet_v3_small", "classifier.3", 32),
    ("efficientnet_b0", "classifier.1", 32),
    ("convnext_tiny", "classifier.2", 32),
    ("regnet_y_400mf", "fc", 32),
    ("shufflenet_v2_x0_5", "fc", 32),
    ("vit_b_16", "heads.head", 224),  # a fixed input size: its position embeddings
]
NO_WEIGHTS_FILE = {"convnext_tiny", "vit_b_16"}  # 28M and 86M parameters: their files take seconds in every render


def info(channels: int = 3, classes: int = 5, size: int = 32) -> dict:
    return {"num_outputs": classes, "in_channels": channels, "image_size": size}


@pytest.mark.parametrize(("name", "head", "size"), ARCHITECTURES)
def test_the_last_linear_layer_becomes_the_classifier(make_config, name, head, size, tmp_path):
    settings = {"model.name": name, "model.dropout": 0.0}
    if name not in NO_WEIGHTS_FILE:  # fine-tuning offline: pretrained=false, the weights of a 10-class model
        source = build_model(make_config(**settings), info(classes=10)).state_dict()
        torch.save(source, tmp_path / "weights.pt")
        settings["model.weights"] = str(tmp_path / "weights.pt")
    model = build_model(make_config(**settings), info(classes=5)).eval()
    assert model.get_submodule(head).out_features == 5
    if name not in NO_WEIGHTS_FILE:
        for key, value in model.state_dict().items():  # every tensor loaded but the new classifier's
            assert torch.equal(value, source[key]) != key.startswith(f"{head}."), key
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 5)


def test_grayscale_images_get_a_one_channel_first_conv_and_dropout_goes_before_the_head(make_config):
    model = build_model(make_config(**{"model.name": "resnet18", "model.dropout": 0.3}), info(channels=1)).eval()
    assert model.conv1.in_channels == 1 and isinstance(model.fc, nn.Linear)
    assert model.fc.dropout.p == 0.3 and model.fc.out_features == 5
    inputs = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(inputs), model(inputs))  # eval: no dropout
        model.fc.train()  # the head's input dropped at random (BatchNorm stays in eval: the same features)
        assert not torch.equal(model(inputs), model(inputs))
        model.fc.dropout.p = 0.0
        assert torch.equal(model(inputs), model.eval()(inputs))


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0", "mobilenet_v3_small", "regnet_y_400mf", "mnasnet0_5"])
def test_parameter_names_are_torchvision_s_whatever_the_dropout(make_config, name):
    """A weights file of a run with another model.dropout loads whole; a model's own dropout is not doubled."""
    reference = get_model(name, num_classes=5)
    names = {key: value.shape for key, value in reference.state_dict().items()}
    own = [module.p for module in reference.modules() if isinstance(module, nn.Dropout) and module.p > 0]
    for dropout in (0.0, 0.1, 0.5):
        model = build_model(make_config(**{"model.name": name, "model.dropout": dropout}), info())
        assert {key: value.shape for key, value in model.state_dict().items()} == names
        added = [dropout] if dropout > 0 else []
        assert [m.p for m in model.modules() if isinstance(m, nn.Dropout) and m.p > 0] == (own or added), dropout


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache ($TORCH_HOME), and no network: a download raises what urllib raises offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_pretrained_weights_load_from_the_hub_cache_and_set_the_normalisation(make_config, hub_cache):
    weights = pretrained_weights("mobilenet_v3_small")
    # The file torchvision would download, placed in the cache: the weights of a 1000-class model.
    reference = get_model("mobilenet_v3_small", num_classes=1000)
    hub_cache.mkdir(parents=True)
    torch.save(reference.state_dict(), hub_cache / Path(weights.url).name)
    cfg = make_config(**{"model.name": "mobilenet_v3_small", "model.pretrained": True})
    model = build_model(cfg, info())
    for key, value in reference.state_dict().items():
        if not key.startswith("classifier.3."):  # the new 5-class head
            assert torch.equal(model.state_dict()[key], value), key
    # The images are normalised as the weights were trained (data.mean/data.std unset).
    data_info = build_datasets(cfg)[2]
    mean, std = list(weights.transforms().mean), list(weights.transforms().std)
    if data_info["in_channels"] == 1:  # grayscale data (MNIST): the average of the RGB values
        mean, std = [sum(mean) / 3], [sum(std) / 3]
    assert data_info["mean"] == pytest.approx(mean) and data_info["std"] == pytest.approx(std)


@pytest.mark.parametrize(("name", "pretrained", "size"), [("resnet18", True, 224), ("resnet18", False, None)])
def test_image_size_0_is_the_pretrained_weights_size_else_the_native_one(make_config, name, pretrained, size):
    cfg = make_config(**{"model.name": name, "model.pretrained": pretrained, "data.image_size": 0})
    train_set, _, data_info = build_datasets(cfg)
    native = train_set.size if size is None else size  # the data type's own default (64, or 32 for datasets)
    assert data_info["image_size"] == cfg.data.image_size == native in ((224,) if pretrained else (32, 64))
    assert train_set[0][0].shape[-2:] == (native, native)
    assert build_datasets(make_config(**{"model.name": name, "model.pretrained": pretrained}))[2]["image_size"] == 16


def test_without_network_the_error_says_where_to_put_the_file(make_config, hub_cache):
    cfg = make_config(**{"model.name": "mobilenet_v3_small", "model.pretrained": True})
    with pytest.raises(ConfigError) as err:
        build_model(cfg, info())
    message = str(err.value)
    assert "cannot download the mobilenet_v3_small weights (" in message and "name resolution" in message
    assert str(hub_cache / Path(pretrained_weights("mobilenet_v3_small").url).name) in message
    assert "model.weights=PATH" in message and "model.pretrained=false" in message


def test_pretrained_needs_a_model_that_has_weights(make_config):
    with pytest.raises(ConfigError, match="model 'simple_cnn' has no pretrained weights"):
        build_datasets(make_config(**{"model.pretrained": True}))


def test_weights_file_loads_by_name_and_leaves_a_classifier_of_another_shape_out(make_config, tmp_path, caplog):
    source = build_model(make_config(**{"model.name": "resnet18", "model.dropout": 0.0}), info(classes=10))
    # A DDP-wrapped model's state dict inside a checkpoint: prefixes are stripped, the 10-class head left out.
    path = tmp_path / "other.pt"
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    cfg = make_config(**{"model.name": "resnet18", "model.weights": str(path), "model.dropout": 0.0})
    with caplog.at_level("INFO"):
        model = build_model(cfg, info(classes=5))
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value) == (not key.startswith("fc.")), key
    assert "left out 2 of another shape ['fc.weight', 'fc.bias']" in caplog.text


def test_bad_weights_files_are_refused(make_config, tmp_path):
    def build(path):
        return build_model(make_config(**{"model.name": "resnet18", "model.weights": str(path)}), info())

    with pytest.raises(CheckpointError, match="no such file"):
        build(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a state dict that loads safely"):
        build(tmp_path / "text.pt")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="none of its 1 tensors fits ResNet"):
        build(tmp_path / "foreign.pt")
