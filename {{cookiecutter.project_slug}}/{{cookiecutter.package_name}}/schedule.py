"""The learning-rate schedule: closed-form factors of the epoch, stepped once per epoch, per parameter group."""

import logging
import math

import torch
import torch.nn as nn

from .models.layers import head_parameters

log = logging.getLogger(__name__)


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
    `model.freeze_backbone_epochs` (only the head learns; every step keeps the same parameters with gradients).
    """
    warmup = cfg.optim.warmup_epochs
    step_size = cfg.optim.step_size
    gamma = cfg.optim.gamma
    frozen = cfg.model.freeze_backbone_epochs
    scale = cfg.optim.backbone_lr_scale
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


def restore_optimizer(optimizer, scheduler, state: dict, cfg) -> None:
    """Load a checkpoint's optimizer and scheduler state, keeping THIS run's hyperparameters: the optimizer comes
    back with the saved lr and weight decay, and the schedule with the saved base lrs, but config.yaml records this
    session's optim.* overrides. The moments and the epoch come from the checkpoint; the lr is this schedule's at
    that epoch (different from before when trainer.epochs changed)."""
    fresh = [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(state["optimizer"])
    for group, settings in zip(optimizer.param_groups, fresh, strict=True):
        group.update(settings)
    if scheduler is not None and state.get("scheduler"):
        scheduler.load_state_dict(state["scheduler"])
        scheduler.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
            group["lr"] = base * factor(scheduler.last_epoch)
    saved = state["config"]["optim"]
    now = vars(cfg.optim)
    if changed := [f"optim.{key} {saved[key]} -> {value}" for key, value in now.items() if saved.get(key) != value]:
        log.info("Resumed with new optimizer settings, applied from here on: %s", ", ".join(changed))


def logged_lrs(cfg, optimizer) -> dict:
    """metrics.csv's lr: the head's (the plain schedule), and the backbone's as `backbone_lr` when it has its own
    (optim.backbone_lr_scale, model.freeze_backbone_epochs)."""
    lrs = {group.get("backbone", False): group["lr"] for group in optimizer.param_groups}
    row = {"lr": lrs.get(False, lrs.get(True))}
    if True in lrs and (cfg.optim.backbone_lr_scale != 1 or cfg.model.freeze_backbone_epochs):
        row["backbone_lr"] = lrs[True]
    return row
