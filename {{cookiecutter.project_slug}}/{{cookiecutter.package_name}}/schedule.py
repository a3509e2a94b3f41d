"""The learning-rate schedule: closed-form factors of the epoch, stepped once per epoch."""

import math

import torch


def build_scheduler(cfg, optimizer):
    """None for a constant learning rate. Factors of the epoch, not of the previous lr, so resuming
    with more `trainer.epochs` stretches the schedule instead of replaying a finished one."""
    epochs, step_size, gamma = cfg.trainer.epochs, cfg.optim.step_size, cfg.optim.gamma
    factors = {
        "cosine": lambda epoch: 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / epochs)),
        "step": lambda epoch: gamma ** (epoch // step_size),
    }
    if cfg.optim.scheduler == "none":
        return None
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors[cfg.optim.scheduler])


def restore_schedule(optimizer, scheduler, state: dict | None) -> None:
    """Load a checkpoint's scheduler state, then set the lr from THIS run's schedule at that epoch
    (the optimizer came back with the old one's lr: different when trainer.epochs changed)."""
    if scheduler is None or not state:
        return
    scheduler.load_state_dict(state)
    for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base * factor(scheduler.last_epoch)
