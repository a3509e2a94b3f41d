"""`build_model(cfg, data_info)`: a plain dict registry (registry.py) from `model.name` to a builder."""

import difflib
from functools import partial

import torch.nn as nn

from ..checkpoint import load_weights_file
from ..errors import ConfigError
from ..task import output_names
from .layers import freeze_parameters, head_keys
from .registry import LIBRARIES, MODELS

__all__ = ["MODELS", "build_model"]  # helpers: layers.py (init, find/freeze by name, gradients)


def find_builder(name: str):
    """MODELS[name], else the builder of the library whose name prefix `name` has (registry.py: LIBRARIES)."""
    if name in MODELS:
        return MODELS[name]
    prefix = max((p for p in LIBRARIES if name.startswith(p)), key=len, default=None)  # "": any other name
    names, build = LIBRARIES.get(prefix, (list, None))
    try:
        known = names()
    except ImportError as err:  # an optional library (an extra in pyproject.toml) that is not installed
        install = f'pip install -e ".[{err.name}]"'
        raise ConfigError(f"model.name={name!r} needs the optional {err.name} package: {install}") from None
    if name in known:
        return partial(build, name)
    known = known if prefix else [*MODELS, *known]
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    listed = f"known: {', '.join(known)}" if len(known) <= 100 else f"no close match among {len(known)} known names"
    hint = f"did you mean {', '.join(close)}?" if close else listed
    raise ConfigError(f"config key 'model.name' = {name!r} is not a model here; {hint}")


def build_model(cfg, data_info: dict) -> nn.Module:
    """The model named by `cfg.model.name`, sized for the data; `model.weights` loaded; frozen per `model.freeze`."""
    builder = find_builder(cfg.model.name)
    try:
        model = builder(cfg.model, data_info)
        if cfg.model.weights:
            load_weights_file(model, cfg.model.weights, head_keys(model), output_names(data_info), cfg.model.reset_head)
        if cfg.model.freeze:
            freeze_parameters(model, cfg.model.freeze)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return model
