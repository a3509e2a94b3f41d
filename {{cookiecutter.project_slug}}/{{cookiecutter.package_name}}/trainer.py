"""The training loop: one readable `Trainer.fit`, plus `evaluate` shared with evaluate.py.

Fast by default: no host sync per step (`.item()` only every `log_interval` steps),
`zero_grad(set_to_none=True)`{% if cookiecutter.gpu != "none" %}, and on CUDA: AMP, pinned memory + non_blocking copies,
cudnn.benchmark{% if cookiecutter.dataset_type != "tabular_csv" %} and channels_last{% endif %}{% endif %}.
Exact resume: every epoch ends with a checkpoint holding model,
optimizer, scheduler, RNG states and history, and the train loader's shuffling is
seeded from (seed, epoch), so a resumed run replays the same batches.
"""

import csv
import logging
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
{% if cookiecutter.gpu == "multi" %}
from torch.nn.parallel import DistributedDataParallel
{% endif %}
from tqdm import tqdm  # not tqdm.auto: its asyncio variant calls iter() twice (workers start twice)

from .checkpoint import FORMAT_VERSION, load_model_weights, save_checkpoint, unwrap_model
from .config import Config, to_dict
from .data import take_skipped
{% if cookiecutter.use_prefetch %}
from .data.prefetch import Prefetcher
{% endif %}
{% if cookiecutter.gpu == "multi" %}
from .utils.distributed import all_reduce_sum, barrier, broadcast_buffers, is_distributed, is_main_process
{% endif %}
from .utils.logs import show_progress
from .utils.seeding import get_rng_state, set_rng_state
{% if cookiecutter.use_tensorboard %}
from .utils.tensorboard import add_epoch, add_graph, open_writer
{% endif %}

log = logging.getLogger(__name__)

METRIC_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time_s"]
{% if cookiecutter.gpu != "none" %}
AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
{% endif %}


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]  # frozen ones stay out
    # Decay weight matrices and conv kernels only; biases and norm scales are not regularised.
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.optim.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    if cfg.optim.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum)
{% if cookiecutter.gpu != "none" %}
    # Fused AdamW updates every parameter in a few CUDA kernels instead of one per tensor.
    on_cuda = all(p.is_cuda for p in params)
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, fused=on_cuda and bool(params))
{% else %}
    return torch.optim.AdamW(groups, lr=cfg.optim.lr)
{% endif %}


def build_scheduler(cfg: Config, optimizer):
    """Stepped once per epoch; None for a constant learning rate.

    Closed-form factors of the epoch, so resuming with more `trainer.epochs` stretches the
    schedule instead of replaying a finished one.
    """
    epochs, step_size, gamma = cfg.trainer.epochs, cfg.optim.step_size, cfg.optim.gamma

    def cosine(epoch: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / epochs))

    def step(epoch: int) -> float:
        return gamma ** (epoch // step_size)

    factors = {"cosine": cosine, "step": step}
    if cfg.optim.scheduler not in factors:
        return None
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors[cfg.optim.scheduler])
{% if cookiecutter.gpu != "none" %}


def amp_dtype_for(cfg: Config, device: torch.device):
    """Autocast dtype on CUDA: bf16 where supported (no loss scaling needed), else fp16; None = off."""
    if not cfg.trainer.amp or device.type != "cuda":
        return None
    if cfg.trainer.amp_dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return AMP_DTYPES[cfg.trainer.amp_dtype]
{% endif %}


def move_batch(inputs, targets, device, memory_format=torch.preserve_format):
    # non_blocking only overlaps with compute when the source is pinned (data.pin_memory).
    inputs = inputs.to(device, non_blocking=True, memory_format=memory_format)
    return inputs, targets.to(device, non_blocking=True)


{% if cookiecutter.gpu != "none" %}
@torch.inference_mode()
def evaluate(model, loader, device, amp_dtype=None, memory_format=torch.preserve_format, progress=False) -> dict:
{% else %}
@torch.inference_mode()
def evaluate(model, loader, device, progress=False) -> dict:
{% endif %}
    """Mean cross-entropy and accuracy over every sample of `loader`."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    for inputs, targets in tqdm(loader, desc="eval", leave=False, disable=not progress, dynamic_ncols=True):
{% if cookiecutter.dataset_type != "tabular_csv" %}
        if targets.shape[0] == 0:  # every image in it was skipped as corrupt
            continue
{% endif %}
{% if cookiecutter.gpu != "none" %}
        inputs, targets = move_batch(inputs, targets, device, memory_format)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(inputs)
{% else %}
        inputs, targets = move_batch(inputs, targets, device)
        logits = model(inputs)
{% endif %}
        loss_sum += F.cross_entropy(logits.float(), targets, reduction="sum")
        correct += (logits.argmax(dim=1) == targets).sum()
        count += targets.shape[0]
{% if cookiecutter.gpu == "multi" %}
    # Each rank saw its own shard of val (no padding): sum over ranks for the whole-set metrics.
    total = torch.tensor(count, dtype=torch.int64, device=device)
    all_reduce_sum(loss_sum, correct, total)
    count = int(total.item())
{% endif %}
    if count == 0:
        raise RuntimeError("the evaluation loader produced no samples")
    return {"loss": loss_sum.item() / count, "accuracy": correct.item() / count, "num_samples": count}


{% if cookiecutter.use_prefetch %}
def prefetch_depth(cfg: Config, device: torch.device) -> int:
    """Batches to prefetch ahead of the step (0: none).

    On CUDA copies go on a side stream (no thread). On the CPU a thread loads ahead; where
    that thread would itself draw random augmentations (no worker processes, or preloaded
    batches), it would race the step for the global RNG and runs would not be reproducible.
    """
    if not cfg.data.prefetch_batches or device.type == "cuda":
        return cfg.data.prefetch_batches
{% if cookiecutter.dataset_type != "tabular_csv" %}
    augments = cfg.data.random_resized_crop or cfg.data.horizontal_flip
    if augments and (cfg.data.num_workers == 0 or cfg.data.preload != "false"):
        log.info(
            "data.prefetch_batches is not used: on the CPU its thread would draw this loader's random "
            "augmentations concurrently with the step (not reproducible); use data.num_workers > 0 to prefetch."
        )
        return 0
{% endif %}
    return cfg.data.prefetch_batches


{% endif %}
{% if cookiecutter.gpu == "multi" %}
def sync_batchnorm(cfg: Config, model: nn.Module, device: torch.device) -> nn.Module:
    """Under `trainer.sync_batchnorm`, BatchNorm statistics over the global batch (CUDA only: NCCL)."""
    if cfg.trainer.sync_batchnorm and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if cfg.trainer.sync_batchnorm:
        log.warning("trainer.sync_batchnorm needs CUDA devices; ignored on the CPU")
    return model


{% endif %}
def write_metrics(path: Path, rows: list[dict]) -> None:
    """Rewrite metrics.csv from the history (atomically): after a resume it matches the checkpoint."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=METRIC_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


class Trainer:
    """Owns the model, optimizer and loop state; `fit()` trains, evaluates and checkpoints."""

    def __init__(self, cfg: Config, model, train_loader, val_loader, data_info: dict, run_dir, device):
        self.cfg = cfg
        self.device = torch.device(device)
{% if cookiecutter.gpu != "none" %}
        self.amp_dtype = amp_dtype_for(cfg, self.device)
        on_cuda = self.device.type == "cuda"
{% if cookiecutter.dataset_type != "tabular_csv" %}
        # channels_last lets cuDNN pick its fastest (NHWC) conv kernels, above all under AMP.
        use_nhwc = cfg.trainer.channels_last and on_cuda
        self.memory_format = torch.channels_last if use_nhwc else torch.preserve_format
{% else %}
        self.memory_format = torch.preserve_format
{% endif %}
        # cudnn.benchmark tries conv algorithms once per input shape and keeps the fastest.
        torch.backends.cudnn.benchmark = cfg.trainer.cudnn_benchmark and on_cuda and not cfg.trainer.deterministic
        # "high" lets float32 matmuls use TF32 tensor cores (Ampere+): much faster, ~1e-3 relative error.
        torch.set_float32_matmul_precision(cfg.trainer.matmul_precision)
        model = model.to(self.device, memory_format=self.memory_format)
{% else %}
        model = model.to(self.device)
{% endif %}
{% if cookiecutter.gpu == "multi" %}
        self.ddp = None
        if is_distributed():  # started by torchrun
            model = sync_batchnorm(cfg, model, self.device)
            # Gradients are averaged over ranks during backward; rank 0's weights are broadcast first.
            model = self.ddp = DistributedDataParallel(model, device_ids=[self.device.index] if on_cuda else None)
        # Validation runs on the bare model: DDP's forward would sync buffers with ranks whose
        # val shards end earlier, and validation needs no gradient sync.
        self.eval_model = unwrap_model(model)
{% else %}
        self.eval_model = model
{% endif %}
        # torch.compile: checkpoints still hold the bare model's names (no `_orig_mod.`).
        self.model = torch.compile(model) if cfg.trainer.compile else model
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.data_info = data_info
        self.run_dir = Path(run_dir)
        self.optimizer = build_optimizer(cfg, self.model)
        self.scheduler = build_scheduler(cfg, self.optimizer)
{% if cookiecutter.gpu != "none" %}
        # fp16 needs loss scaling to keep small gradients from underflowing; bf16 does not.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
{% endif %}
{% if cookiecutter.gpu == "multi" %}
        self.is_main = is_main_process()  # rank 0 alone shows bars and writes files
        self.show_bars = show_progress(cfg.trainer.progress_bar) and self.is_main
{% else %}
        self.show_bars = show_progress(cfg.trainer.progress_bar)
{% endif %}
{% if cookiecutter.use_prefetch %}
        self.prefetch_batches = prefetch_depth(cfg, self.device)
        # Built once: on CUDA it owns a side stream, which every epoch's iter() reuses.
        self.batches = train_loader
        if self.prefetch_batches:
            # Bounded: at most prefetch_batches ready ahead of this step (see data/prefetch.py).
            self.batches = Prefetcher(train_loader, self.device, self.prefetch_batches)
{% endif %}
{% if cookiecutter.use_tensorboard %}
        writes = {{ "self.is_main" if cookiecutter.gpu == "multi" else "True" }}
        self.tensorboard = open_writer(self.run_dir / "tensorboard") if cfg.trainer.tensorboard and writes else None
{% endif %}
        self.samples_per_s = 0.0  # training speed of the last epoch
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.best_metric = None
        self.bad_epochs = 0  # epochs since the monitored metric last improved
        self.history: list[dict] = []

    # ---- checkpoint state -------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume exactly; plain types and tensors only (weights_only=True)."""
        return {
            "format_version": FORMAT_VERSION,
            "model": unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
{% if cookiecutter.gpu != "none" %}
            "scaler": self.scaler.state_dict(),
{% endif %}
            "epoch": self.epoch,
            "step": self.step,
            "best_metric": self.best_metric,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "rng": get_rng_state(),
            "config": to_dict(self.cfg),
            "data_info": self.data_info,
        }

    def load_state_dict(self, state: dict, path="checkpoint") -> None:
        load_model_weights(self.model, state, path)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler and state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
            # The optimizer came back with the old schedule's last lr; recompute it from this
            # run's schedule (the same value unless trainer.epochs changed).
            epoch = self.scheduler.last_epoch
            for group, base, factor in zip(
                self.optimizer.param_groups, self.scheduler.base_lrs, self.scheduler.lr_lambdas, strict=True
            ):
                group["lr"] = base * factor(epoch)
{% if cookiecutter.gpu != "none" %}
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
{% endif %}
        self.epoch = state["epoch"]
        self.step = state["step"]
        self.best_metric = state["best_metric"]
        self.bad_epochs = state["bad_epochs"]
        self.history = list(state["history"])
        set_rng_state(state["rng"])

    # ---- the loop ---------------------------------------------------------------
    def fit(self) -> list[dict]:
        cfg = self.cfg.trainer
        checkpoints = self.run_dir / "checkpoints"
{% if cookiecutter.gpu == "multi" %}
        if self.is_main:
            checkpoints.mkdir(parents=True, exist_ok=True)
            write_metrics(self.run_dir / "metrics.csv", self.history)
{% else %}
        checkpoints.mkdir(parents=True, exist_ok=True)
        write_metrics(self.run_dir / "metrics.csv", self.history)
{% endif %}
{% if cookiecutter.use_tensorboard %}
        if self.tensorboard is not None and not self.history:
            inputs, _ = next(iter(self.val_loader))
            add_graph(self.tensorboard, self.eval_model, inputs.to(self.device))
{% endif %}
        for epoch in range(self.epoch, cfg.epochs):
            if cfg.early_stopping_patience and self.bad_epochs >= cfg.early_stopping_patience:
                log.info("Early stopping: %s has not improved for %d epochs.", cfg.monitor, self.bad_epochs)
                break
            # Shuffling and worker seeds depend only on (seed, epoch): a resumed run sees the same batches.
            if self.train_loader.generator is not None:
                self.train_loader.generator.manual_seed(self.cfg.seed + epoch)
{% if cookiecutter.gpu == "multi" %}
            sampler = getattr(self.train_loader, "sampler", None)
            if hasattr(sampler, "set_epoch"):  # DistributedSampler: a new shuffle (and shard) every epoch
                sampler.set_epoch(epoch)
{% endif %}
            start = time.perf_counter()
            train_loss, train_acc = self.train_one_epoch(epoch)
{% if cookiecutter.gpu == "multi" %}
            broadcast_buffers(self.eval_model)
{% endif %}
{% if cookiecutter.gpu != "none" %}
            val = evaluate(
                self.eval_model, self.val_loader, self.device, self.amp_dtype, self.memory_format, self.show_bars
            )
{% else %}
            val = evaluate(self.eval_model, self.val_loader, self.device, progress=self.show_bars)
{% endif %}
            skipped = [take_skipped(self.train_loader), take_skipped(self.val_loader)]
{% if cookiecutter.gpu == "multi" %}
            counts = torch.tensor(skipped, device=self.device)
            all_reduce_sum(counts)  # each rank counted its own shard's skips
            skipped = counts.tolist() if self.is_main else [0, 0]  # rank 0 reports the sum
{% endif %}
            for split, count in zip(("train", "val"), skipped, strict=True):
                if count:
                    log.warning("epoch %d: skipped %d unreadable %s images", epoch + 1, count, split)
            lr = self.optimizer.param_groups[0]["lr"]
            if self.scheduler:
                self.scheduler.step()
            row = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "val_loss": val["loss"],
                "val_acc": val["accuracy"],
                "lr": lr,
                "time_s": round(time.perf_counter() - start, 3),
            }
            self.history.append(row)
{% if cookiecutter.use_tensorboard %}
            if self.tensorboard is not None:
                add_epoch(self.tensorboard, row, self.samples_per_s)
{% endif %}
            self.epoch = epoch + 1
            improved = self._update_best(row[cfg.monitor])
{% if cookiecutter.gpu == "multi" %}
            barrier()  # every rank has finished the epoch before rank 0 writes it down
            if self.is_main:
                self._save(checkpoints, improved)
{% else %}
            self._save(checkpoints, improved)
{% endif %}
            log.info(
                "epoch %d/%d  train_loss %.4f  train_acc %.4f  val_loss %.4f  val_acc %.4f  lr %.2e  %.1fs%s",
                epoch + 1,
                cfg.epochs,
                train_loss,
                train_acc,
                val["loss"],
                val["accuracy"],
                lr,
                row["time_s"],
                "  (best)" if improved else "",
            )
{% if cookiecutter.use_tensorboard %}
        if self.tensorboard is not None:
            self.tensorboard.close()
{% endif %}
        return self.history

    def _save(self, checkpoints: Path, improved: bool) -> None:
        # best first, then last: a crash in between only repeats this epoch on resume.
        state = self.state_dict()
        if improved:
            save_checkpoint(state, checkpoints / "best.pt")
        save_checkpoint(state, checkpoints / "last.pt")
        write_metrics(self.run_dir / "metrics.csv", self.history)

    def _update_best(self, value: float) -> bool:
        better = (lambda a, b: a > b) if self.cfg.trainer.monitor == "val_acc" else (lambda a, b: a < b)
        if self.best_metric is None or better(value, self.best_metric):
            self.best_metric = value
            self.bad_epochs = 0
            return True
        self.bad_epochs += 1
        return False

    def train_one_epoch(self, epoch: int) -> tuple[float, float]:
        cfg = self.cfg.trainer
        self.model.train()
        # Running sums stay on the device: reading them (.item()) would sync every step.
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        start = time.perf_counter()
        bar = tqdm(
            {{ "self.batches" if cookiecutter.use_prefetch else "self.train_loader" }},
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            leave=False,
            disable=not self.show_bars,
            dynamic_ncols=True,
        )
        accumulate, n_batches = cfg.accumulate_steps, len(bar)
        self.optimizer.zero_grad(set_to_none=True)
        for i, (inputs, targets) in enumerate(bar, start=1):
            # Gradients of `accumulate_steps` batches add up before one optimizer step; dividing the
            # loss by the group's size (the last group may be short) makes that step see their mean.
            group_start = (i - 1) // accumulate * accumulate
            group_size = min(accumulate, n_batches - group_start)
            sync = i - group_start == group_size
{% if cookiecutter.dataset_type != "tabular_csv" %}
            if targets.shape[0] == 0:  # every image in it was skipped as corrupt
                # Run it empty (zero loss and gradients) rather than skip it, so that accumulation groups
                # stay in step{{ " and every rank joins DDP's all-reduce" if cookiecutter.gpu == "multi" else "" }}.
                inputs = self._empty_images()
{% endif %}
{% if cookiecutter.gpu == "multi" %}
            # DDP all-reduces gradients during backward: skip that for all but a group's last batch.
            sync_context = self.ddp.no_sync() if self.ddp is not None and not sync else nullcontext()
{% else %}
            sync_context = nullcontext()
{% endif %}
{% if cookiecutter.gpu != "none" %}
            inputs, targets = move_batch(inputs, targets, self.device, self.memory_format)
            with sync_context:
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                    logits = self.model(inputs)
{% if cookiecutter.dataset_type != "tabular_csv" %}
                    loss = F.cross_entropy(logits, targets) if len(targets) else logits.sum() * 0.0  # no NaN mean
{% else %}
                    loss = F.cross_entropy(logits, targets)
{% endif %}
                self.scaler.scale(loss / group_size).backward()
{% else %}
            inputs, targets = move_batch(inputs, targets, self.device)
            with sync_context:
                logits = self.model(inputs)
{% if cookiecutter.dataset_type != "tabular_csv" %}
                loss = F.cross_entropy(logits, targets) if len(targets) else logits.sum() * 0.0  # no NaN mean
{% else %}
                loss = F.cross_entropy(logits, targets)
{% endif %}
                (loss / group_size).backward()
{% endif %}
            if sync:
                self._optimizer_step()
            seen += targets.shape[0]
            loss_sum += loss.detach() * targets.shape[0]
            correct += (logits.argmax(dim=1) == targets).sum()
            if i % cfg.log_interval == 0:  # the only host sync inside the loop
                speed = seen / (time.perf_counter() - start)
                if self.show_bars:
                    bar.set_postfix(loss=f"{loss.item():.4f}", samples_s=f"{speed:.0f}")
                    log.debug("epoch %d step %d loss %.4f %.0f samples/s", epoch + 1, i, loss.item(), speed)
                else:
                    log.info("epoch %d step %d loss %.4f %.0f samples/s", epoch + 1, i, loss.item(), speed)
{% if cookiecutter.gpu == "multi" %}
        total = torch.tensor(seen, dtype=torch.int64, device=self.device)
        all_reduce_sum(loss_sum, correct, total)  # train metrics over every rank's shard
        seen = int(total.item())
{% endif %}
        self.samples_per_s = seen / (time.perf_counter() - start)
        if seen == 0:
            raise RuntimeError("the train loader produced no batches (is data.batch_size larger than the data?)")
        train_loss = loss_sum.item() / seen
        if not math.isfinite(train_loss):
            raise FloatingPointError(
                f"train loss is {train_loss} in epoch {epoch + 1}; try a lower optim.lr or trainer.grad_clip_norm"
            )
        return train_loss, correct.item() / seen

{% if cookiecutter.dataset_type != "tabular_csv" %}
    def _empty_images(self) -> torch.Tensor:
        """A batch of no images, shaped like a real one (convolutions and BatchNorm accept N=0)."""
        size = self.data_info["image_size"]
        return torch.zeros(0, self.data_info["in_channels"], size, size)

{% endif %}
    def _optimizer_step(self) -> None:
        clip = self.cfg.trainer.grad_clip_norm
{% if cookiecutter.gpu != "none" %}
        if clip > 0:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.scaler.step(self.optimizer)  # skipped when fp16 gradients overflowed
        self.scaler.update()
{% else %}
        if clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
{% endif %}
        self.optimizer.zero_grad(set_to_none=True)  # frees grads instead of writing zeros
        self.step += 1
