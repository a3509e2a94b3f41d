"""`trainer.ema_decay`: an exponential moving average (EMA) of the weights, the copy that is validated and kept.

After every optimizer step, ema = decay x ema + (1 - decay) x weights, BatchNorm statistics included. The
average over the last ~1 / (1 - decay) steps is smoother than the last step's weights and often generalises
better, at the cost of one more copy of the model and one fused update per step. With EMA on, validation,
best.pt (by the EMA's metric) and everything that loads a checkpoint for inference (evaluate.py, predict.py,
export.py, model.weights) use the averaged weights; training goes on from the raw ones.
"""

import torch.nn as nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["build_ema", "ema_state", "load_ema"]


def build_ema(cfg, model: nn.Module) -> AveragedModel | None:
    """An averaged copy of `model` (the bare one, not a wrapper around it); None when ema_decay is 0."""
    decay = cfg.trainer.ema_decay
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def ema_state(ema: AveragedModel | None) -> dict:
    """The checkpoint entries: the averaged weights under `model_ema` (loadable into a bare model), and
    how many steps they average (the first update copies the weights instead of averaging)."""
    if ema is None:
        return {}
    return {"model_ema": ema.module.state_dict(), "ema_updates": int(ema.n_averaged)}


def load_ema(ema: AveragedModel | None, state: dict) -> None:
    """Restore the average from a checkpoint; one saved without EMA starts it from the next step's weights."""
    if ema is not None and "model_ema" in state:
        ema.module.load_state_dict(state["model_ema"])
        ema.n_averaged.fill_(state["ema_updates"])
