"""Models (each of MODELS, on a batch of tests/tiny_data.py): shapes, init, find/freeze, forward, grads."""

import math

import pytest
import torch
import torch.nn as nn
from conftest import fast_overrides
from tiny_data import MODEL_WIDTH_KEY

from {{ cookiecutter.package_name }}.config import ConfigError, load_config
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.engine import build_optimizer
from {{ cookiecutter.package_name }}.models import MODELS, build_model
from {{ cookiecutter.package_name }}.models.layers import find_module, freeze_parameters, grad_norm, input_gradient
from {{ cookiecutter.package_name }}.task import build_criterion

INIT_SCHEMES = ["kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "orthogonal"]  # + default


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, data_root):
    """(data_info, inputs, targets): the tiny dataset's info and a batch of it, as models and the loss get it."""
    cfg = load_config(overrides=fast_overrides(tmp_path_factory.mktemp("models"), data_root))
    _, val_loader, info = build_dataloaders(cfg)
    inputs, targets = next(iter(val_loader))
    assert inputs.shape[0] > 1  # BatchNorm in train mode needs two samples
    return info, inputs, targets


def weight_layers(model: nn.Module):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def first_layer(model: nn.Module) -> str:
    """The name of the first conv or linear layer, e.g. `features.block1.conv`."""
    return weight_layers(model)[0][0]


def first_block(model: nn.Module) -> str:
    """The prefix of the first layer's block, e.g. `features.block1.`."""
    return first_layer(model).rpartition(".")[0] + "."


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shape_for_every_model(make_config, tiny, name):
    info, inputs, _ = tiny
    for width in (info["num_outputs"], 5):  # the head is as wide as data_info says, whatever the data
        model = build_model(make_config(**{"model.name": name}), {**info, "num_outputs": width})
        for training in (True, False):
            model.train(training)
            out = model(inputs)
            assert out.shape == (inputs.shape[0], width)
            assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_unknown_model_name_lists_the_close_matches(make_config, tiny):
    name = sorted(MODELS)[0]
    typo = name[:-1] + ("x" if name[-1] != "x" else "y")
    with pytest.raises(ConfigError) as err:
        build_model(make_config(**{"model.name": typo}), tiny[0])
    assert f"'model.name' = {typo!r} is not a model here; did you mean {name}" in str(err.value)
    with pytest.raises(ConfigError, match="is not a model here; known: "):
        build_model(make_config(**{"model.name": "zzzzzz"}), tiny[0])


# ---- init took effect ------------------------------------------------------------------------------------
def big_layer(make_config, info: dict, init: str) -> nn.Module:
    """The largest layer of the default model made wide (256 x 256 and more): sample stds are within 1%."""
    model = build_model(make_config(**{MODEL_WIDTH_KEY: [256, 256], "model.init": init}), info)
    return max((m for _, m in weight_layers(model)), key=lambda m: m.weight.numel())


def fan_in(weight: torch.Tensor) -> int:
    return weight[0].numel()


@pytest.mark.parametrize(
    ("init", "std"),
    [
        ("kaiming_normal", lambda fan_in, fan_out: math.sqrt(2 / fan_in)),
        ("kaiming_uniform", lambda fan_in, fan_out: math.sqrt(2 / fan_in)),
        ("xavier_normal", lambda fan_in, fan_out: math.sqrt(2 / (fan_in + fan_out))),
        ("xavier_uniform", lambda fan_in, fan_out: math.sqrt(2 / (fan_in + fan_out))),
    ],
)
def test_scheme_std(make_config, tiny, init, std):
    weight = big_layer(make_config, tiny[0], init).weight.detach()
    expected = std(fan_in(weight), weight.shape[0] * weight[0, 0].numel())
    assert weight.std().item() == pytest.approx(expected, rel=0.03)
    assert abs(weight.mean().item()) < 0.01
    if init.endswith("uniform"):  # U(-bound, bound) has std bound / sqrt(3)
        assert weight.abs().max().item() <= math.sqrt(3) * expected + 1e-6


def test_default_init_is_pytorch_kaiming_uniform(make_config, tiny):
    weight = big_layer(make_config, tiny[0], "default").weight.detach()
    bound = 1 / math.sqrt(fan_in(weight))  # kaiming_uniform_(a=sqrt(5)) draws from U(-bound, bound)
    assert weight.abs().max().item() <= bound
    assert weight.abs().max().item() > 0.99 * bound
    assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)


def test_orthogonal_rows(make_config, tiny):
    model = build_model(make_config(**{MODEL_WIDTH_KEY: [4, 8], "model.init": "orthogonal"}), tiny[0])
    weights = [layer.weight.detach().flatten(1) for _, layer in weight_layers(model)]
    wide = [w for w in weights if w.shape[0] <= w.shape[1]]  # out <= in: the rows are orthonormal
    assert len(wide) >= 2 and all(torch.allclose(w @ w.T, torch.eye(w.shape[0]), atol=1e-5) for w in wide)


@pytest.mark.parametrize("init", INIT_SCHEMES)
def test_schemes_zero_the_biases_and_reset_norms(make_config, tiny, init):
    model = build_model(make_config(**{"model.init": init}), tiny[0])
    biases = [m.bias for _, m in weight_layers(model) if m.bias is not None]
    assert biases and all(torch.count_nonzero(b) == 0 for b in biases)
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_applies_model_init(make_config, tiny, name):
    """A named scheme zeroes the biases (so it ran); `default` keeps PyTorch's own, nonzero ones."""
    for init, zeroed in (("xavier_normal", True), ("default", False)):
        model = build_model(make_config(**{"model.name": name, "model.init": init}), tiny[0])
        biases = [m.bias for _, m in weight_layers(model) if m.bias is not None]
        assert biases and all((torch.count_nonzero(b) == 0) == zeroed for b in biases), init


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unknown_init_scheme_names_the_valid_ones(make_config, tiny, name):
    with pytest.raises(ConfigError) as err:
        build_model(make_config(**{"model.name": name, "model.init": "he"}), tiny[0])
    assert "'model.init'" in str(err.value) and "'he'" in str(err.value)
    assert all(scheme in str(err.value) for scheme in ["default", *INIT_SCHEMES])


# ---- find and freeze by name -----------------------------------------------------------------------------
def test_find_module_by_name(make_config, tiny):
    model = build_model(make_config(), tiny[0])
    name = first_layer(model)
    assert "." in name  # named blocks, e.g. features.block1.conv, not positions
    layer = find_module(model, name)
    assert layer is model.get_submodule(name)
    assert isinstance(layer, (nn.Conv2d, nn.Linear))
    typo = name[:-1]
    with pytest.raises(KeyError) as err:
        find_module(model, typo)
    assert repr(typo) in str(err.value) and name in str(err.value)


def test_freeze_parameters_by_pattern(make_config, tiny):
    info, inputs, targets = tiny
    cfg = make_config()
    model = build_model(cfg, info)
    prefix = first_block(model)
    frozen = freeze_parameters(model, [prefix + "*"])
    assert frozen and all(name.startswith(prefix) for name in frozen)
    for name, param in model.named_parameters():
        assert param.requires_grad == (not name.startswith(prefix)), name
    optimizer = build_optimizer(cfg, model)
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}
    # a train step leaves the frozen weights exactly as they were
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    build_criterion(cfg, info)(model(inputs), targets).backward()
    optimizer.step()
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]) == (name in frozen), name


def test_freeze_from_config(make_config, tiny):
    prefix = first_block(build_model(make_config(), tiny[0]))
    model = build_model(make_config(**{"model.freeze": [prefix + "*"]}), tiny[0])
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith(prefix))
    assert any(p.requires_grad for n, p in model.named_parameters() if not n.startswith(prefix))
    with pytest.raises(ValueError, match="nope"):  # a pattern that matches nothing is a typo
        freeze_parameters(model, ["nope.*"])
    with pytest.raises(ConfigError, match="nope"):
        build_model(make_config(**{"model.freeze": ["nope.*"]}), tiny[0])


# ---- no layers in forward --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_makes_no_layers(make_config, tiny, name, monkeypatch):
    info, x, _ = tiny
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


def test_grad_norm_is_what_clipping_measures(make_config, tiny):
    info, x, targets = tiny
    cfg = make_config()
    model = build_model(cfg, info)
    assert grad_norm(model) == 0  # no gradients yet
    build_criterion(cfg, info)(model(x), targets).backward()
    before = [p.grad.clone() for p in model.parameters()]
    norm = grad_norm(model)
    assert norm > 0
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), before, strict=True))  # not clipped
    assert torch.allclose(norm, nn.utils.clip_grad_norm_(model.parameters(), max_norm=float("inf")))


def test_input_gradient_is_the_loss_gradient_of_the_inputs_alone(make_config, tiny):
    info, x, targets = tiny
    cfg = make_config()
    model, criterion = build_model(cfg, info), build_criterion(cfg, info)
    model.train()
    with torch.inference_mode():  # works from evaluation code too
        gradient = input_gradient(model, x, targets, criterion)
    assert gradient.shape == x.shape and gradient.abs().sum() > 0
    assert model.training and all(p.grad is None for p in model.parameters())  # the model is left as it was
    # the same as backward() through a leaf copy of the inputs, in eval mode
    leaf = x.clone().requires_grad_(True)
    model.eval()
    criterion(model(leaf), targets).backward()
    assert torch.allclose(gradient, leaf.grad)
