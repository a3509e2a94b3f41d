"""`build_model(cfg, data_info)`: a plain dict registry (registry.py) from `model.name` to a builder."""

import difflib
from functools import partial

import torch.nn as nn

from ..checkpoint import load_weights_file
from ..errors import ConfigError
from .layers import freeze_parameters
from .registry import LIBRARIES, MODELS

__all__ = ["MODELS", "build_model"]  # helpers: layers.py (init, find/freeze by name, gradients), shapes.py (images)


def build_model(cfg, data_info: dict) -> nn.Module:
    """The model named by `cfg.model.name`, sized for the data; `model.weights` loaded; frozen per `model.freeze`."""
    name = cfg.model.name
    builder = MODELS.get(name)
    if builder is None:  # a library's model by name (registry.py: LIBRARIES)
        builder = next((partial(build, name) for names, build in LIBRARIES if name in names()), None)
    if builder is None:
        known = [*MODELS, *(n for names, _ in LIBRARIES for n in names())]
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
        raise ConfigError(f"config key 'model.name' = {name!r} is not a model here; {hint}")
    try:
        model = builder(cfg.model, data_info)
        if cfg.model.weights:
            load_weights_file(model, cfg.model.weights)
        if cfg.model.freeze:
            freeze_parameters(model, cfg.model.freeze)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return model
