"""`build_model(cfg, data_info)`: a plain dict registry from `model.name` to a builder."""

import torch.nn as nn

from ..config import ConfigError
{% if cookiecutter.dataset_type != "tabular_csv" %}
from .cnn import SimpleCNN
{% endif %}
from .layers import (
    conv_output_size,
    feature_map_size,
    find_module,
    freeze_parameters,
    grad_norm,
    init_weights,
    input_gradient,
)
{% if cookiecutter.dataset_type != "tabular_csv" %}
from .resnet import ResNet18

# Each builder takes (cfg.model, data_info); add your own model here.
MODELS = {
    "simple_cnn": lambda m, info: SimpleCNN(
        info["num_classes"], info["in_channels"], info["image_size"], m.channels, m.dropout, m.init
    ),
    "resnet18": lambda m, info: ResNet18(info["num_classes"], info["in_channels"], m.dropout, m.init),
}
{% else %}
from .mlp import MLP

# Each builder takes (cfg.model, data_info); add your own model here.
MODELS = {
    "mlp": lambda m, info: MLP(info["num_features"], info["num_classes"], m.hidden_sizes, m.dropout, m.init),
}
{% endif %}

__all__ = ["MODELS", "build_model", "conv_output_size", "feature_map_size", "find_module", "freeze_parameters"]
__all__ += ["grad_norm", "init_weights", "input_gradient"]


def build_model(cfg, data_info: dict) -> nn.Module:
    """The model named by `cfg.model.name`, sized for the data; frozen per `cfg.model.freeze`."""
    name = cfg.model.name
    if name not in MODELS:
        raise ConfigError(f"config key 'model.name' = {name!r} is not one of: {', '.join(MODELS)}")
    try:
        model = MODELS[name](cfg.model, data_info)
        if cfg.model.freeze:
            freeze_parameters(model, cfg.model.freeze)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return model
