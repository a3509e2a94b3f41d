"""Which device runs the model: this project runs on the CPU, or on Apple's MPS where there is one."""

import logging

import torch

from .errors import ConfigError
from .utils import free_ram

log = logging.getLogger(__name__)
DEVICES = "auto, cpu, mps"


def resolve_device(name: str) -> torch.device:
    """`auto` picks Apple MPS when present, else the CPU, and says which."""
    if name == "auto":
        device = torch.device("mps" if torch.backends.mps.is_available() else "cpu")
        log.info("trainer.device=auto: running on %s", device.type.upper())
        return device
    if name not in ("cpu", "mps"):
        raise ConfigError(f"config key 'trainer.device' = {name!r} is not one of: {DEVICES}")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.device='mps' but Apple MPS is not available here; use trainer.device=cpu or auto")
    return torch.device(name)


def setup_device(cfg) -> torch.device:
    """The run's device (global torch settings would go here; the CPU needs none)."""
    return resolve_device(cfg.trainer.device)


def free_memory(device: torch.device) -> int | None:
    """Bytes that can still be allocated for data.preload (RAM: MPS shares it)."""
    return free_ram()
