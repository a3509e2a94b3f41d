import logging

import torch

from ..config import ConfigError

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else the CPU (and says so once)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        log.info("No CUDA device found: running on the CPU.")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name!r} but CUDA is not available; use trainer.device=cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(
            f"trainer.device={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist "
            f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})"
        )
    return device
