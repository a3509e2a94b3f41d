"""The learning-rate schedule: closed-form factors of the epoch, stepped once per epoch, per parameter group."""

import math

import torch
import torch.nn as nn

from .models.layers import head_parameters


def param_groups(cfg, model: nn.Module) -> list[dict]:
    """The trainable parameters in groups: weight decay on weight matrices and conv kernels only (biases and
    norm scales are not regularised); the backbone (`backbone: True`) apart from the classifier head, for
    `optim.backbone_lr_scale` and `model.freeze_backbone_epochs`."""
    head = {id(p) for p in head_parameters(model)}
    params = [p for p in model.parameters() if p.requires_grad]  # frozen ones (model.freeze) stay out
    groups = []
    for backbone in (True, False):
        for decay in (True, False):
            chosen = [p for p in params if (id(p) not in head) == backbone and (p.ndim >= 2) == decay]
            if chosen:
                weight_decay = cfg.optim.weight_decay if decay else 0.0
                groups.append({"params": chosen, "weight_decay": weight_decay, "backbone": backbone})
    return groups


def build_scheduler(cfg, optimizer):
    """None for a constant learning rate. Factors of the epoch, not of the previous lr, so resuming
    with more `trainer.epochs` stretches the schedule instead of replaying a finished one.

    `optim.warmup_epochs` = w ramps the lr linearly, 1/(w+1), 2/(w+1), ... of it, before the schedule
    starts: large steps on a fresh head (or with big batches) can wreck pretrained features early on.
    The backbone's groups get `optim.backbone_lr_scale` times that lr, and 0 for the first
    `model.freeze_backbone_epochs` (only the head learns; the same parameters every step, as DDP needs).
    """
    warmup, step_size, gamma = cfg.optim.warmup_epochs, cfg.optim.step_size, cfg.optim.gamma
    frozen, scale = cfg.model.freeze_backbone_epochs, cfg.optim.backbone_lr_scale
    span = max(1, cfg.trainer.epochs - warmup)  # the epochs the schedule itself spans
    decay = {
        "cosine": lambda epoch: 0.5 * (1.0 + math.cos(math.pi * min(epoch, span) / span)),
        "step": lambda epoch: gamma ** (epoch // step_size),
        "none": lambda epoch: 1.0,
    }[cfg.optim.scheduler]
    if cfg.optim.scheduler == "none" and not warmup and not frozen and scale == 1:
        return None

    def head(epoch: int) -> float:
        return (epoch + 1) / (warmup + 1) if epoch < warmup else decay(epoch - warmup)

    def backbone(epoch: int) -> float:
        return 0.0 if epoch < frozen else scale * head(epoch)

    factors = [backbone if group.get("backbone") else head for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)


def restore_schedule(optimizer, scheduler, state: dict | None) -> None:
    """Load a checkpoint's scheduler state, then set the lr from THIS run's schedule at that epoch
    (the optimizer came back with the old one's lr: different when trainer.epochs changed)."""
    if scheduler is None or not state:
        return
    scheduler.load_state_dict(state)
    for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base * factor(scheduler.last_epoch)
