"""Which device runs the model, and the global CUDA settings that make it fast."""

import logging

import torch

from .errors import ConfigError
from .utils import free_ram

log = logging.getLogger(__name__)
DEVICES = "auto, cpu, cuda, cuda:N, mps"


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then the CPU, and says which."""
    if name == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda")
        elif torch.backends.mps.is_available():
            device = torch.device("mps")
        else:
            device = torch.device("cpu")
        log.info("trainer.device=auto: running on %s", device.type.upper())
        return device
    if name not in ("cpu", "cuda", "mps") and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise ConfigError(f"config key 'trainer.device' = {name!r} is not one of: {DEVICES}")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name!r} but CUDA is not available; use trainer.device=cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ConfigError(f"trainer.device={name!r} but only {count} CUDA device(s) exist (cuda:0 .. cuda:{count - 1})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.device='mps' but Apple MPS is not available here; use trainer.device=cpu or auto")
    return device


def setup_device(cfg, device: torch.device | None = None) -> torch.device:
    """The run's device, with the global CUDA flags set once, here, before anything runs on it."""
    device = device or resolve_device(cfg.trainer.device)
    if device.type == "cuda":
        # cudnn.benchmark tries conv algorithms once per input shape and keeps the fastest.
        torch.backends.cudnn.benchmark = cfg.trainer.cudnn_benchmark and not cfg.trainer.deterministic
        # "high" lets float32 matmuls use TF32 tensor cores (Ampere+): much faster, ~1e-3 relative error.
        torch.set_float32_matmul_precision(cfg.trainer.matmul_precision)
    return device


def amp_dtype(cfg, device: torch.device):
    """Autocast dtype on CUDA: bf16 where supported (no loss scaling needed), else fp16; None = off."""
    if not cfg.trainer.amp or device.type != "cuda":
        return None
    if cfg.trainer.amp_dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.trainer.amp_dtype]


def free_memory(device: torch.device) -> int | None:
    """Bytes that can still be allocated on `device` for data.preload: GPU memory, or RAM."""
    return torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else free_ram()
