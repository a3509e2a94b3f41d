"""Any torchvision classification model by name (`model.name=convnext_tiny`), optionally pretrained.

`torchvision.models.get_model` builds it; the last Linear layer (`fc`, `classifier[-1]`, `heads.head`, ...)
is replaced by one with `num_classes` outputs, and for images of another channel count the first conv
too (pretrained RGB filters summed into one grayscale channel). With `model.pretrained`, torchvision's
default weights load from the torch hub cache (`$TORCH_HOME/hub/checkpoints`), downloaded once.
"""

import urllib.error
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn
import torchvision
from torchvision.models import get_model, get_model_weights, list_models

from ..errors import ConfigError
from .layers import init_weights
from .timm_models import PREFIX, pretrained_cfg, timm_preprocessing


def torchvision_names() -> list[str]:
    return list_models(module=torchvision.models)  # classification models only


def pretrained_weights(name: str):
    """torchvision's default weights of model `name` (their `.transforms()` hold mean, std and sizes)."""
    return get_model_weights(name).DEFAULT


def parent_and_name(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    parent, _, child = path.rpartition(".")
    return (model.get_submodule(parent) if parent else model), child


def replace_head(model: nn.Module, num_classes: int, dropout: float) -> str:
    """Swap the last Linear layer for a new one with `num_classes` outputs, under the same name; its path.

    A model with a dropout of its own (EfficientNet, MobileNet, VGG, ...) keeps it, at torchvision's rate; any other
    gets `dropout` on the head's input, as a child of the head run by a forward pre-hook: it has no tensors, so the
    state dict's names stay torchvision's (`fc.weight`) whatever `model.dropout` is.
    """
    linears = [path for path, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ConfigError(f"{type(model).__name__} has no Linear layer to replace with a {num_classes}-class head")
    parent, child = parent_and_name(model, linears[-1])
    head = nn.Linear(getattr(parent, child).in_features, num_classes)
    if dropout > 0 and not any(isinstance(module, nn.Dropout) and module.p > 0 for module in model.modules()):
        head.dropout = nn.Dropout(dropout)
        head.register_forward_pre_hook(drop_input)
    setattr(parent, child, head)
    return linears[-1]


def drop_input(head: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: the head's input through the head's own `dropout` (it follows train() and eval())."""
    return (head.dropout(args[0]),)


def adapt_first_conv(model: nn.Module, in_channels: int) -> None:
    """A first conv that takes `in_channels`: RGB filters summed (1 channel) or averaged and repeated."""
    path, conv = next((p, m) for p, m in model.named_modules() if isinstance(m, nn.Conv2d))
    if conv.in_channels == in_channels:
        return
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        conv.bias is not None,
    )
    with torch.no_grad():
        weight = conv.weight.sum(1, keepdim=True) if in_channels == 1 else conv.weight.mean(1, keepdim=True)
        new.weight.copy_(weight.repeat(1, in_channels, 1, 1))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    parent, child = parent_and_name(model, path)
    setattr(parent, child, new)


def build_torchvision(name: str, m, info: dict) -> nn.Module:
    weights = pretrained_weights(name) if m.pretrained else None
    try:
        model = get_model(name, weights=weights)
    except (urllib.error.URLError, OSError) as err:
        file = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise ConfigError(
            f"model.pretrained=true: cannot download the {name} weights ({getattr(err, 'reason', err)}). Without "
            f"network, fetch {weights.url} elsewhere and put it at {file} (TORCH_HOME sets the folder above "
            "hub/), or give a local file with model.weights=PATH, or set model.pretrained=false."
        ) from None
    replace_head(model, info["num_outputs"], m.dropout)
    adapt_first_conv(model, info["in_channels"])
    if weights is None and m.init != "default":  # `default` keeps torchvision's own init
        model.apply(partial(init_weights, scheme=m.init))
    return model


def pretrained_preprocessing(m, channels: int) -> dict | None:
    """The pretrained weights' own preprocessing (torchvision's, or timm's for `timm/` names): {"mean", "std"
    (averaged for one channel), "image_size" (the size they were evaluated at), "resize_size" (the shorter side
    resized to before the centre crop), "interpolation"}; None unless `model.pretrained`."""
    if not m.pretrained:
        return None
    if m.name.startswith(PREFIX):
        mean, std, size = timm_preprocessing(m.name)
        config = pretrained_cfg(m.name)
        resize = int(size / config.crop_pct)
        interpolation = config.interpolation
    elif m.name in torchvision_names():
        transforms = pretrained_weights(m.name).transforms()
        mean = list(transforms.mean)
        std = list(transforms.std)
        size = transforms.crop_size[0]
        resize = transforms.resize_size[0]
        interpolation = transforms.interpolation.value
    else:
        raise ConfigError(
            f"model.pretrained=true: model {m.name!r} has no pretrained weights; choose a torchvision model "
            "(resnet18, efficientnet_b0, convnext_tiny, ...), a timm/<name> one, or set model.pretrained=false"
        )
    if channels == 1:
        mean = [sum(mean) / len(mean)]
        std = [sum(std) / len(std)]
    interpolation = interpolation if interpolation in ("bilinear", "bicubic") else "bilinear"
    return {"mean": mean, "std": std, "image_size": size, "resize_size": resize, "interpolation": interpolation}
