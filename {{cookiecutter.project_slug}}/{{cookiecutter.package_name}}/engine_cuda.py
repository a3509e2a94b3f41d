"""The loop: `train_one_epoch` and `evaluate`, and the `Trainer` that runs them epoch after epoch.

Fast on CUDA: AMP (bf16, or fp16 with a GradScaler), channels_last weights, non_blocking copies
from pinned memory, fused AdamW, and no host sync per step (`.item()` only every `log_interval`
optimizer steps). Exact resume: every epoch ends with a checkpoint of model, optimizer, scheduler,
scaler and loop state, and every epoch starts from seeds derived from (seed, epoch).
"""

import logging
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm  # not tqdm.auto: its asyncio variant calls iter() twice (workers start twice)

from .checkpoint import FORMAT_VERSION, load_model_weights, save_checkpoint, save_epoch_checkpoints, unwrap_model
from .config import to_dict
from .data import take_skipped  # images
from .data.resumable import position_seed, resume_at
from .device import amp_dtype
from .ema import build_ema, ema_state, load_ema
from .metrics import BestTracker, log_epoch, log_progress, write_metrics
from .models.layers import freeze_backbone_norms
from .preemption import RunStopped, StopRequest, continued_progress, epoch_layout
from .schedule import build_scheduler, logged_lrs, param_groups, restore_optimizer
from .task import RunningSums, epoch_row
from .utils import derive_seed, seed_everything, show_progress

log = logging.getLogger(__name__)
__all__ = ["Trainer", "build_optimizer", "build_scheduler", "evaluate", "predict", "prepare_model", "train_one_epoch"]


def build_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(cfg, model)  # decay or not; backbone or head (schedule.py)
    params = [p for group in groups for p in group["params"]]
    if cfg.optim.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum)
    # Fused AdamW updates every parameter in a few CUDA kernels instead of one per tensor.
    fused = bool(params) and all(p.is_cuda for p in params)
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, fused=fused)


def prepare_model(model: nn.Module, cfg, device) -> nn.Module:
    """The model as `train_one_epoch` runs it, made before the optimizer takes its parameters: channels_last
    weights on CUDA (NHWC lets cuDNN pick its fastest conv kernels, above all under AMP; inputs follow the weights),
    then compiled with trainer.compile. Compiling covers training only; validation, the reports and predict.py run
    the bare model (`Trainer.eval_model`), so their numbers do not depend on the compiler. Checkpoints hold the
    bare names."""
    if cfg.trainer.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if cfg.trainer.compile else model


def train_one_epoch(
    model, criterion, optimizer, loader, *, scaler, device, epoch: int, cfg, ema=None, progress=None, on_step=None
) -> dict:
    """One pass over `loader`: forward, loss, backward, clip, step (and the `ema` update). Returns the loss and the
    task's train metrics (task.py), steps. `progress`: where a resumed epoch stopped (its batches are skipped at
    the sampler); `on_step(batches, steps, sums, seconds)` runs after every optimizer step (a mid-epoch
    checkpoint, a requested stop)."""
    model.train()
    freeze_backbone_norms(model, epoch, cfg)  # model.freeze_backbone_epochs
    dtype = amp_dtype(cfg, device)
    accumulate = cfg.trainer.accumulate_steps
    clip = cfg.trainer.grad_clip_norm
    progress = progress or {}  # a resumed epoch: where it stopped
    first, steps, seconds = progress.get("batches", 0), progress.get("steps", 0), progress.get("seconds", 0.0)
    sums, start = RunningSums(device).restored(progress), time.perf_counter() - seconds
    resume_at(loader, first)
    step_seed = derive_seed(cfg.seed, "step", epoch)
    hidden = not show_progress(cfg.trainer.progress_bar)
    bar = tqdm(loader, f"epoch {epoch + 1}/{cfg.trainer.epochs}", leave=False, initial=first, disable=hidden)
    optimizer.zero_grad(set_to_none=True)
    for i, (inputs, targets) in enumerate(bar, start=first):
        torch.manual_seed(position_seed(step_seed, i))  # dropout: drawn per batch, so a resumed epoch draws the same
        # `accumulate` batches add up their gradients before one step; dividing each loss by its
        # group's size (the last group may be short) makes that step see the group's mean.
        group_size = min(accumulate, len(loader) - i // accumulate * accumulate)
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(inputs)
            loss = criterion(logits, targets) if len(targets) else logits.sum() * 0.0  # all skipped: no NaN
        scaler.scale(loss / group_size).backward()
        sums.add(loss, logits, targets, criterion)
        if (i + 1) % accumulate == 0 or i + 1 == len(loader):
            if clip > 0:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            scaler.step(optimizer)  # skipped when fp16 gradients overflowed
            scaler.update()
            optimizer.zero_grad(set_to_none=True)  # frees grads instead of writing zeros
            steps += 1
            if ema is not None:  # trainer.ema_decay: the average follows every optimizer step
                ema.update_parameters(model)
            if steps % cfg.trainer.log_interval == 0:  # the only host sync inside the loop
                log_progress(bar, epoch, steps, loss, sums, start)
            if on_step is not None:  # may write a mid-epoch checkpoint, or stop the run
                on_step(i + 1, steps, sums, time.perf_counter() - start)
    result = sums.result("train")
    return {**result, "steps": steps, "samples_per_s": result["num_samples"] / (time.perf_counter() - start)}


def predict(model, inputs: torch.Tensor, device, cfg) -> torch.Tensor:
    """The model's logits for a batch in fp32, as predict.py computes them (evaluate and report.py use it): the
    metrics, best.pt and the reports do not depend on training's autocast (as PyTorch's reference scripts evaluate)."""
    return model(inputs)


@torch.inference_mode()
def evaluate(model, criterion, loader, device, cfg, data_info: dict | None = None) -> dict:
    """Mean loss and the task's metrics over every sample of `loader` (all of them with `data_info`), in fp32."""
    model.eval()
    sums = RunningSums.for_validation(device, data_info)
    for inputs, targets in tqdm(loader, "eval", leave=False, disable=not show_progress(cfg.trainer.progress_bar)):
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        logits = predict(model, inputs, device, cfg)
        sums.add(criterion(logits, targets) if len(targets) else logits.sum() * 0.0, logits, targets, criterion)
    return sums.result("evaluation")


class Trainer:
    """Loop state (epoch, step, best metric, history, grad scaler) and `fit()`: train, validate, checkpoint."""

    def __init__(
        self, cfg, model, criterion, optimizer, scheduler, train_loader, val_loader, data_info, run_dir, device
    ):
        self.cfg = cfg
        self.criterion = criterion
        self.optimizer, self.scheduler = optimizer, scheduler
        self.train_loader, self.val_loader = train_loader, val_loader
        self.data_info = data_info
        self.run_dir = Path(run_dir)
        self.device = torch.device(device)
        self.model, self.eval_model = model, unwrap_model(model)  # as prepare_model made it, and the bare one
        # fp16 needs loss scaling to keep small gradients from underflowing; bf16 does not.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp_dtype(cfg, self.device) == torch.float16)
        self.epoch, self.step, self.history = 0, 0, []
        self.best = BestTracker(cfg.trainer.monitor)
        self.ema = build_ema(cfg, self.eval_model)  # trainer.ema_decay (None: off)
        self.progress = None  # where a mid-epoch checkpoint stopped (load_state_dict)
        self.epoch_callbacks = []  # called as callback(row, train_stats) after each epoch's checkpoint

    @property
    def validated_model(self) -> nn.Module:
        """The weights validation and best.pt judge: the EMA's with trainer.ema_decay, else the trained ones."""
        return self.eval_model if self.ema is None else self.ema.module

    def state_dict(self) -> dict:
        """Everything needed to resume exactly; plain types and tensors only (weights_only=True)."""
        return {
            "format_version": FORMAT_VERSION,
            "model": unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best_metric": self.best.best,
            "bad_epochs": self.best.bad_epochs,
            "history": self.history,
            "config": to_dict(self.cfg),
            "data_info": self.data_info,
            **ema_state(self.ema),
        }

    def load_state_dict(self, state: dict, path="checkpoint") -> None:
        load_model_weights(self.model, state, path, averaged=False)
        load_ema(self.ema, state)
        restore_optimizer(self.optimizer, self.scheduler, state, self.cfg)  # with this run's optim.* settings
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step, self.history = state["epoch"], state["step"], list(state["history"])
        self.best = BestTracker(self.cfg.trainer.monitor, state["best_metric"], state["bad_epochs"])
        self.progress = state.get("progress")
        self.data_info.update(state.get("data_info", {}))  # and what its epochs recorded there (task.py's epoch_row)

    def fit(self) -> list[dict]:
        cfg = self.cfg.trainer
        write_metrics(self.run_dir / "metrics.csv", self.history)
        self.progress = continued_progress(self.progress, epoch_layout(self.cfg))
        with StopRequest(cfg.checkpoint_every_steps, cfg.checkpoint_every_minutes) as self.stop:
            for epoch in range(self.epoch, cfg.epochs):
                if not self.run_epoch(epoch):
                    break
        return self.history

    def run_epoch(self, epoch: int) -> bool:
        """Train and validate one epoch, then end it; False when early stopping ends the run instead."""
        cfg = self.cfg.trainer
        if cfg.early_stopping_patience and self.best.bad_epochs >= cfg.early_stopping_patience:
            log.info("Early stopping: %s has not improved for %d epochs.", cfg.monitor, self.best.bad_epochs)
            return False
        # Seeds depend only on (seed, epoch): a resumed run replays the same batches and dropout.
        seed_everything(derive_seed(self.cfg.seed, "step", epoch))
        self.train_loader.generator.manual_seed(derive_seed(self.cfg.seed, "loader", epoch))
        progress, self.progress = self.progress, None  # a mid-epoch checkpoint's: this epoch's first part
        start = time.perf_counter() - (progress or {}).get("seconds", 0.0)
        train = train_one_epoch(
            self.model,
            self.criterion,
            self.optimizer,
            self.train_loader,
            scaler=self.scaler,
            device=self.device,
            epoch=epoch,
            cfg=self.cfg,
            ema=self.ema,
            progress=progress,
            on_step=partial(self.on_step, epoch),
        )
        val = evaluate(self.validated_model, self.criterion, self.val_loader, self.device, self.cfg, self.data_info)
        self.end_epoch(epoch, train, val, time.perf_counter() - start)
        if self.stop.signal_name is not None:  # asked for during the epoch's last step or validation
            raise RunStopped(f"stopped on request after epoch {epoch + 1}")
        return True

    def on_step(self, epoch: int, batches: int, steps: int, sums, seconds: float) -> None:
        """After an optimizer step: last.pt mid-epoch when one is due (trainer.checkpoint_every_steps/minutes) or a
        stop was asked for (then RunStopped). The epoch's last step is left to end_epoch."""
        stopping = self.stop.signal_name is not None
        if batches == len(self.train_loader) or not (stopping or self.stop.due(steps)):
            return
        self.save_progress(epoch, batches, steps, sums.state(), seconds)
        self.stop.saved()
        if stopping:
            raise RunStopped(f"stopped by {self.stop.signal_name} in epoch {epoch + 1} after {batches} batches")

    def save_progress(self, epoch: int, batches: int, steps: int, sums: dict, seconds: float) -> None:
        """last.pt with the position in the epoch: the batches done, their optimizer steps and train sums."""
        progress = {"epoch": epoch, "batches": batches, "steps": steps, "seconds": seconds, **sums}
        progress["layout"] = epoch_layout(self.cfg)  # other batches restart the epoch
        save_checkpoint({**self.state_dict(), "progress": progress}, self.run_dir / "checkpoints" / "last.pt")
        log.info("epoch %d: checkpoint after %d of %d batches", epoch + 1, batches, len(self.train_loader))

    def end_epoch(self, epoch: int, train: dict, val: dict, seconds: float) -> None:
        """Step the schedule, record the epoch, write best/last checkpoints and metrics.csv."""
        for split, loader in (("train", self.train_loader), ("val", self.val_loader)):  # images
            if skipped := take_skipped(loader):  # images
                log.warning("epoch %d: skipped %d unreadable %s images", epoch + 1, skipped, split)  # images
        lrs = logged_lrs(self.cfg, self.optimizer)  # the head's lr, and the backbone's when it has its own
        if self.scheduler:
            self.scheduler.step()
        row = {"epoch": epoch + 1, **epoch_row(train, val, self.data_info), **lrs, "time_s": round(seconds, 3)}
        self.history.append(row)
        self.epoch = epoch + 1
        self.step += train["steps"]
        improved = self.best.update(row)
        state = self.state_dict()
        folder = self.run_dir / "checkpoints"  # best.pt, the runners-up, then last.pt
        options = self.cfg.trainer
        save_epoch_checkpoints(state, folder, self.history, options.monitor, options.keep_checkpoints)
        write_metrics(self.run_dir / "metrics.csv", self.history)
        for callback in self.epoch_callbacks:
            callback(row, train)
        log_epoch(row, self.cfg.trainer.epochs, improved)
