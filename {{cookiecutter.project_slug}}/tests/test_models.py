"""Models: output shapes, init took effect, conv-size arithmetic, find/freeze by name, no layers made in forward."""

import itertools
import math

import pytest
import torch
import torch.nn as nn

from {{ cookiecutter.package_name }}.config import ConfigError
from {{ cookiecutter.package_name }}.models import (
    MODELS,
    build_model,
    conv_output_size,
    feature_map_size,
    find_module,
    freeze_parameters,
    grad_norm,
    input_gradient,
)
from {{ cookiecutter.package_name }}.trainer import build_optimizer

NUM_CLASSES = 3
{% if cookiecutter.dataset_type != "tabular_csv" %}
FIRST_LAYER = "features.block1.conv"
FIRST_BLOCK = "features.block1.*"


def data_info(image_size=32, in_channels=3) -> dict:
    return {"num_classes": NUM_CLASSES, "in_channels": in_channels, "image_size": image_size}


def inputs(info: dict, batch=2) -> torch.Tensor:
    return torch.randn(batch, info["in_channels"], info["image_size"], info["image_size"])
{% else %}
FIRST_LAYER = "features.layer1.linear"
FIRST_BLOCK = "features.layer1.*"


def data_info(num_features=6) -> dict:
    return {"num_classes": NUM_CLASSES, "num_features": num_features}


def inputs(info: dict, batch=4) -> torch.Tensor:
    return torch.randn(batch, info["num_features"])
{% endif %}


def weight_layers(model: nn.Module):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shape_for_every_model(make_config, name):
    cfg = make_config(**{"model.name": name})
    info = data_info()
    model = build_model(cfg, info)
    for training in (True, False):
        model.train(training)
        out = model(inputs(info))
        assert out.shape == (inputs(info).shape[0], NUM_CLASSES)
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
{% if cookiecutter.dataset_type != "tabular_csv" %}


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
{% endif %}


def test_unknown_model_name(make_config):
    cfg = make_config(**{"model.name": "vgg"})
    with pytest.raises(ConfigError) as err:
        build_model(cfg, data_info())
    assert "'vgg'" in str(err.value)
    for name in MODELS:
        assert name in str(err.value)


# ---- init took effect ------------------------------------------------------------------------------------
def big_model(make_config, init: str) -> nn.Module:
    """A model with a big layer (`big`): 256 inputs per unit, ~65k weights, so sample std is within 1%."""
{% if cookiecutter.dataset_type != "tabular_csv" %}
    cfg = make_config(**{"model.name": "simple_cnn", "model.channels": [16, 64, 128], "model.init": init})
    model = build_model(cfg, data_info(8))
    model.big = model.features.block3.conv  # 128 x 64 x 3 x 3: fan_in 576
{% else %}
    cfg = make_config(**{"model.hidden_sizes": [256, 256], "model.init": init})
    model = build_model(cfg, data_info(256))
    model.big = model.features.layer2.linear  # 256 x 256: fan_in 256
{% endif %}
    return model


def fan_in(weight: torch.Tensor) -> int:
    return weight[0].numel()


def test_kaiming_normal_std(make_config):
    weight = big_model(make_config, "kaiming_normal").big.weight.detach()
    assert weight.std().item() == pytest.approx(math.sqrt(2 / fan_in(weight)), rel=0.03)
    assert abs(weight.mean().item()) < 0.01


def test_default_init_is_pytorch_kaiming_uniform(make_config):
    weight = big_model(make_config, "default").big.weight.detach()
    bound = 1 / math.sqrt(fan_in(weight))  # kaiming_uniform_(a=sqrt(5)) draws from U(-bound, bound)
    assert weight.abs().max().item() <= bound
    assert weight.abs().max().item() > 0.99 * bound
    assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)


def test_xavier_uniform_bound(make_config):
    weight = big_model(make_config, "xavier_uniform").big.weight.detach()
    fan_out = weight.shape[0] * weight[0, 0].numel()
    bound = math.sqrt(6 / (fan_in(weight) + fan_out))
    assert weight.abs().max().item() <= bound + 1e-6
    assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)


def test_orthogonal_rows(make_config):
{% if cookiecutter.dataset_type != "tabular_csv" %}
    cfg = make_config(**{"model.name": "simple_cnn", "model.channels": [4, 8], "model.init": "orthogonal"})
    model = build_model(cfg, data_info(8))
{% else %}
    cfg = make_config(**{"model.hidden_sizes": [4, 4], "model.init": "orthogonal"})
    model = build_model(cfg, data_info(6))
{% endif %}
    for name, layer in weight_layers(model):
        w = layer.weight.detach().flatten(1)
        if w.shape[0] <= w.shape[1]:  # out <= in: the rows are orthonormal
            assert torch.allclose(w @ w.T, torch.eye(w.shape[0]), atol=1e-5), name


@pytest.mark.parametrize("init", ["kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "orthogonal"])
def test_schemes_zero_the_biases_and_reset_norms(make_config, init):
    model = build_model(make_config(**{"model.init": init}), data_info())
    biases = [m.bias for _, m in weight_layers(model) if m.bias is not None]
    assert biases
    assert all(torch.count_nonzero(b) == 0 for b in biases)
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)


def test_default_scheme_keeps_pytorch_biases(make_config):
    model = build_model(make_config(**{"model.init": "default"}), data_info())
    biases = [m.bias for _, m in weight_layers(model) if m.bias is not None]
    assert biases
    assert all(torch.count_nonzero(b) > 0 for b in biases)


def test_init_differs_between_schemes(make_config):
    torch.manual_seed(0)
    default = big_model(make_config, "default").big.weight.detach().std()
    torch.manual_seed(0)
    kaiming = big_model(make_config, "kaiming_normal").big.weight.detach().std()
    assert kaiming > 2 * default  # sqrt(2 / fan_in) vs 1 / sqrt(3 * fan_in)
{% if cookiecutter.dataset_type != "tabular_csv" %}


def test_resnet_init_scheme_applies(make_config):
    model = build_model(make_config(**{"model.name": "resnet18", "model.init": "orthogonal"}), data_info())
    fc = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    w = fc.weight.detach()
    assert torch.allclose(w @ w.T, torch.eye(NUM_CLASSES), atol=1e-5)
    assert torch.count_nonzero(fc.bias) == 0
{% endif %}


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
{% if cookiecutter.dataset_type != "tabular_csv" %}


@pytest.mark.parametrize("size", [8, 15, 16, 33])
def test_feature_map_size_of_the_cnn(make_config, size):
    model = build_model(make_config(**{"model.name": "simple_cnn", "model.channels": [4, 8, 4]}), data_info(size))
    assert feature_map_size(model.features, size) == model.features(inputs(data_info(size))).shape[-2:]
{% endif %}


# ---- find and freeze by name -----------------------------------------------------------------------------
def test_find_module_by_name(make_config):
    model = build_model(make_config(), data_info())
    layer = find_module(model, FIRST_LAYER)
    assert layer is model.get_submodule(FIRST_LAYER)
    assert isinstance(layer, (nn.Conv2d, nn.Linear))
    typo = FIRST_LAYER.replace("1", "l", 1)
    with pytest.raises(KeyError) as err:
        find_module(model, typo)
    assert typo in str(err.value) and FIRST_LAYER in str(err.value)


def test_freeze_parameters_by_pattern(make_config):
    cfg = make_config()
    model = build_model(cfg, data_info())
    frozen = freeze_parameters(model, [FIRST_BLOCK])
    prefix = FIRST_BLOCK.rstrip("*")
    assert frozen and all(name.startswith(prefix) for name in frozen)
    for name, param in model.named_parameters():
        assert param.requires_grad == (not name.startswith(prefix)), name
    optimizer = build_optimizer(cfg, model)
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}
    # a train step leaves the frozen weights exactly as they were
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    info = data_info()
    loss = nn.functional.cross_entropy(model(inputs(info)), torch.zeros(inputs(info).shape[0], dtype=torch.long))
    loss.backward()
    optimizer.step()
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]) == (name in frozen), name


def test_freeze_from_config(make_config):
    model = build_model(make_config(**{"model.freeze": [FIRST_BLOCK]}), data_info())
    prefix = FIRST_BLOCK.rstrip("*")
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith(prefix))
    assert any(p.requires_grad for n, p in model.named_parameters() if not n.startswith(prefix))


def test_freeze_pattern_matching_nothing(make_config):
    model = build_model(make_config(), data_info())
    with pytest.raises(ValueError, match="nope"):
        freeze_parameters(model, ["nope.*"])
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ConfigError, match="nope"):
        build_model(make_config(**{"model.freeze": ["nope.*"]}), data_info())


# ---- no layers in forward --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_makes_no_layers(make_config, name, monkeypatch):
    info = data_info()
    model = build_model(make_config(**{"model.name": name}), info)
    modules = {id(m) for m in model.modules()}
    params = {id(p) for p in model.parameters()}
    keys = list(model.state_dict())
    constructed = []
    original_init = nn.Module.__init__

    def counting_init(self, *args, **kwargs):
        constructed.append(type(self).__name__)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(nn.Module, "__init__", counting_init)
    x = inputs(info)
    for training in (True, True, False):
        model.train(training)
        model(x)
    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
    monkeypatch.undo()
    assert constructed == []
    assert {id(m) for m in model.modules()} == modules
    assert {id(p) for p in model.parameters()} == params
    assert list(model.state_dict()) == keys
    assert torch.equal(first, second)  # same weights on every call


def test_grad_norm_is_what_clipping_measures(make_config):
    model = build_model(make_config(), data_info())
    assert grad_norm(model) == 0  # no gradients yet
    info = data_info()
    x = inputs(info)
    nn.functional.cross_entropy(model(x), torch.arange(x.shape[0]) % NUM_CLASSES).backward()
    before = [p.grad.clone() for p in model.parameters()]
    norm = grad_norm(model)
    assert norm > 0
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), before, strict=True))  # not clipped
    assert torch.allclose(norm, nn.utils.clip_grad_norm_(model.parameters(), max_norm=float("inf")))


def test_input_gradient_is_the_loss_gradient_of_the_inputs_alone(make_config):
    model = build_model(make_config(), data_info())
    model.train()
    info = data_info()
    x = inputs(info)
    targets = torch.arange(x.shape[0]) % NUM_CLASSES
    with torch.inference_mode():  # works from evaluation code too
        gradient = input_gradient(model, x, targets)
    assert gradient.shape == x.shape and gradient.abs().sum() > 0
    assert model.training and all(p.grad is None for p in model.parameters())  # the model is left as it was
    # the same as backward() through a leaf copy of the inputs, in eval mode
    leaf = x.clone().requires_grad_(True)
    model.eval()
    nn.functional.cross_entropy(model(leaf), targets).backward()
    assert torch.allclose(gradient, leaf.grad)
