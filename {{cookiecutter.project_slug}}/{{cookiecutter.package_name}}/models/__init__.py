"""`build_model(cfg, data_info)`: a plain dict registry (registry.py) from `model.name` to a builder."""

import torch.nn as nn

from ..errors import ConfigError
from .layers import freeze_parameters
from .registry import MODELS

__all__ = ["MODELS", "build_model"]  # helpers: layers.py (init, find/freeze by name, gradients), shapes.py (images)


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
