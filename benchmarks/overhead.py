"""Trainer overhead: the generated Trainer vs the shortest raw PyTorch loop doing the same work.

    python benchmarks/overhead.py [--epochs 3] [--pairs 6] [--images 1856] [--image-size 64]
                                  [--batch-size 64] [--device auto] [--profile] [--template DIR]

It renders the template (image_folder, gpu=single, use_prefetch=false) into a temp folder,
writes the project's own sample images (1856 train images: 29 steps per epoch at the
default batch size 64), builds the loaders once with `data.preload=cpu` (decoded once,
held in memory as tensors, batched by indexing) and trains the project's default model
(simple_cnn) for the same epochs two ways, on the same tensors, from the same seed:

* trainer: exactly as `train.py` runs it: `setup_logging(run_dir/"train.log")`, then the
  project's training call (`fit_generated` in rendering.py: `Trainer(...).fit()` of
  `PKG.engine`, or of `PKG.trainer` in the layout before it) with
  `trainer.progress_bar=true`. Bars are shown only when stderr is
  a terminal (`show_progress` checks isatty), so the benchmark forces them on by patching
  the package's `show_progress` to return the config value, and points stderr at
  os.devnull while it runs: tqdm's formatting and writes (and the console log lines) are
  counted, your terminal's rendering is not. Each epoch it also writes best/last
  checkpoints (atomically, fsynced), metrics.csv and train.log: all part of its work.
* raw: the shortest loop doing the same work: same model init, the project's
  `build_optimizer`/`build_scheduler`, the same AMP dtype, channels_last and cudnn.benchmark
  on CUDA; per epoch the train steps (with the train loss/accuracy sums the Trainer also
  reports), an evaluation on val (loss/accuracy sums), a scheduler step and a
  `torch.save({"model", "optimizer"})` checkpoint. No bars, no logging.

Both sides are warmed up once (one epoch each) so one-off costs (lazy imports, first-call
kernels, cudnn autotune) are excluded. Then `--pairs` interleaved pairs are timed
(trainer, raw | raw, trainer | ...), so machine noise hits both alike; on CUDA the clock is
read after a synchronize. The last line is the median per-pair ratio, e.g.
`ratio trainer/raw: 1.02`. Target: at most 1.05 on CPU; at least 0.97 of raw throughput
(ratio <= 1/0.97 = 1.03) on a GPU.

Both sides use the default config (accumulate_steps=1, no grad clipping, no compile) and must
end with the same metrics (printed per pair as "max metric diff"; 0 on the CPU). On a busy
machine run times swing by 2x or more and the ratio means nothing: the script warns when one
side's times vary by more than 25%.

`--profile` adds a cProfile of one extra run of each side: the functions the Trainer calls
more often than the raw loop (by extra own time), and the cumulative time of its parts
(checkpoints, metrics.csv, bars, logging).
"""

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rendering import (
    close_logging,
    fit_generated,
    force_progress_bars,
    import_project,
    render_image_folder_project,
    seed,
    seed_batch,
    seed_epoch,
    start_logging,
)


def render(out: Path, template: Path | None = None) -> Path:
    return render_image_folder_project(
        out, "bench overhead", template, use_prefetch=False, use_github_actions=False
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Wall and process-CPU seconds (all threads) since creation; CUDA is synchronized first."""

    def __init__(self, device: torch.device):
        self.device = device
        sync(device)
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        sync(self.device)
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def autocast_dtype(cfg, device: torch.device):
    """The Trainer's autocast dtype: bf16 where supported, else fp16; None off CUDA or amp off."""
    if device.type != "cuda" or not getattr(cfg.trainer, "amp", False):
        return None
    choice = getattr(cfg.trainer, "amp_dtype", "auto")
    if choice == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bfloat16": torch.bfloat16, "float16": torch.float16}[choice]


def run_trainer(m, cfg, loaders, device, run_dir: Path) -> tuple[tuple[float, float], dict]:
    """What train.py does after building data and model: logging to run_dir, Trainer.fit()."""
    seed(m, cfg.seed)
    model = m.models.build_model(cfg, loaders[2])
    # Bars and console log lines are rendered and written, to os.devnull.
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        clock = Clock(device)
        (run_dir / "checkpoints").mkdir(parents=True)
        start_logging(m, run_dir / "train.log")
        history = fit_generated(m, cfg, model, loaders, run_dir, device)
        elapsed = clock.stop()
        close_logging(m)
    return elapsed, history[-1]


def run_raw(m, cfg, loaders, device, run_dir: Path) -> tuple[tuple[float, float], dict]:
    """The shortest hand-written loop doing the Trainer's work (no bars, no logs)."""
    train_loader, val_loader, data_info = loaders
    seed(m, cfg.seed)
    model = m.models.build_model(cfg, data_info)
    clock = Clock(device)
    run_dir.mkdir(parents=True)
    on_cuda = device.type == "cuda"
    amp_dtype = autocast_dtype(cfg, device)
    nhwc = on_cuda and getattr(cfg.trainer, "channels_last", False)
    fmt = torch.channels_last if nhwc else torch.preserve_format
    torch.backends.cudnn.benchmark = on_cuda and getattr(cfg.trainer, "cudnn_benchmark", False)
    if hasattr(cfg.trainer, "matmul_precision"):  # the same TF32 setting as the Trainer's
        torch.set_float32_matmul_precision(cfg.trainer.matmul_precision)
    bare = model.to(device, memory_format=fmt)
    model = torch.compile(bare) if getattr(cfg.trainer, "compile", False) else bare
    optimizer = m.loop.build_optimizer(cfg, bare)
    scheduler = m.loop.build_scheduler(cfg, optimizer)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    for epoch in range(cfg.trainer.epochs):
        seed_epoch(m, cfg, train_loader, epoch)  # same batches and dropout as the Trainer's
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        for batch, (inputs, targets) in enumerate(train_loader):
            seed_batch(m, cfg, epoch, batch)
            inputs = inputs.to(device, non_blocking=True, memory_format=fmt)
            targets = targets.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(inputs)
                loss = F.cross_entropy(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            seen += targets.shape[0]
            loss_sum += loss.detach() * targets.shape[0]
            correct += (logits.argmax(dim=1) == targets).sum()
        row = {"train_loss": loss_sum.item() / seen, "train_acc": correct.item() / seen}
        bare.eval()  # validation on the bare model, as the Trainer does
        val_loss = torch.zeros((), dtype=torch.float64, device=device)
        val_correct = torch.zeros((), dtype=torch.int64, device=device)
        count = 0
        with torch.inference_mode():
            for inputs, targets in val_loader:
                inputs = inputs.to(device, non_blocking=True, memory_format=fmt)
                targets = targets.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits = bare(inputs)
                val_loss += F.cross_entropy(logits.float(), targets, reduction="sum")
                val_correct += (logits.argmax(dim=1) == targets).sum()
                count += targets.shape[0]
        row.update(val_loss=val_loss.item() / count, val_acc=val_correct.item() / count)
        if scheduler is not None:
            scheduler.step()
        torch.save(
            {"model": bare.state_dict(), "optimizer": optimizer.state_dict()}, run_dir / "last.pt"
        )
    return clock.stop(), row


def profile_sides(m, cfg, loaders, device, runs: Path, top: int) -> None:
    """cProfile one run of each side; list what the Trainer calls more often, and its parts."""
    stats = {}
    for name, fn in (("trainer", run_trainer), ("raw", run_raw)):
        profiler = cProfile.Profile()
        profiler.enable()
        (elapsed, _), _ = fn(m, cfg, loaders, device, runs / f"profile-{name}")
        profiler.disable()
        stats[name] = (elapsed, pstats.Stats(profiler, stream=io.StringIO()).stats)
    (t_wall, t_stats), (r_wall, r_stats) = stats["trainer"], stats["raw"]
    print(f"\nprofile (cProfile on, both slower): trainer {t_wall:.3f} s, raw {r_wall:.3f} s")

    def label(func) -> str:
        return f"{Path(func[0]).name}:{func[1]}({func[2]})"

    raw = {label(f): (v[1], v[2]) for f, v in r_stats.items()}  # -> (calls, own time)
    rows = []
    for func, (_, calls, own, _, _) in t_stats.items():
        r_calls, r_own = raw.get(label(func), (0, 0.0))
        if calls != r_calls:  # equal counts (the model's own ops) differ by noise only
            rows.append((own - r_own, calls, r_calls, label(func)))
    rows.sort(reverse=True)
    print(f"  called more often by the trainer, top {top} by extra own time (whole run):")
    print(f"  {'extra ms':>9} {'calls':>7} {'raw calls':>9}  function")
    for extra, calls, r_calls, name in rows[:top]:
        print(f"  {extra * 1e3:9.1f} {calls:7d} {r_calls:9d}  {name}")
    print("  cumulative time of the Trainer's parts (whole run):")
    parts = {
        "train_one_epoch", "evaluate", "__iter__", "save_checkpoint", "state_dict",
        "write_metrics", "get_rng_state", "to_dict", "set_postfix", "handle", "write",
        "_update_best", "take_skipped",
    }  # fmt: skip
    for func, v in sorted(t_stats.items(), key=lambda kv: -kv[1][3]):
        if func[2] in parts and any(k in func[0] for k in (m.pkg, "tqdm", "logging")):
            print(f"  {v[3] * 1e3:9.1f} ms {v[1]:7d} calls  {label(func)}")


def report(wall: dict, cpu: dict, steps: int, epochs: int, device: torch.device) -> float:
    """Print the summary; return the median per-pair wall-time ratio trainer/raw."""
    ratios = [t / r for t, r in zip(wall["trainer"], wall["raw"], strict=True)]
    t_med, r_med = statistics.median(wall["trainer"]), statistics.median(wall["raw"])
    print(
        f"median time: trainer {t_med:.3f} s ({t_med / steps * 1e3:.1f} ms/step), "
        f"raw {r_med:.3f} s ({r_med / steps * 1e3:.1f} ms/step)"
    )
    t_min, r_min = min(wall["trainer"]), min(wall["raw"])
    print(
        f"best of {len(ratios)}: trainer {t_min:.3f} s, raw {r_min:.3f} s: "
        f"ratio {t_min / r_min:.3f}, extra {(t_min - r_min) / epochs * 1e3:+.0f} ms/epoch"
    )
    if device.type == "cpu":  # process CPU time: less hit than wall time by other load
        cpu_ratios = [t / r for t, r in zip(cpu["trainer"], cpu["raw"], strict=True)]
        print(
            f"cpu-time ratio: median {statistics.median(cpu_ratios):.3f}, "
            f"range {min(cpu_ratios):.3f} - {max(cpu_ratios):.3f}"
        )
    spread = max(max(v) / min(v) for v in wall.values())
    if (
        spread > 1.25
    ):  # the same work took this much longer in some runs: other load on the machine
        print(
            f"warning: one side's run times vary {spread:.1f}x between runs: the machine is busy "
            "and the ratio is noisy; rerun when idle (shorter runs, e.g. --epochs 1 --pairs 12, "
            "interleave more finely)"
        )
    median = statistics.median(ratios)
    print(
        f"wall-time ratio: median {median:.3f}, range {min(ratios):.3f} - {max(ratios):.3f} "
        f"over {len(ratios)} pairs; trainer throughput {1 / median:.3f} of raw"
    )
    return median


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed run")
    parser.add_argument("--pairs", type=int, default=6, help="interleaved pairs timed")
    parser.add_argument("--images", type=int, default=1856, help="train images (29 steps of 64)")
    parser.add_argument("--image-size", type=int, default=64, help="data.image_size")
    parser.add_argument("--batch-size", type=int, default=64, help="data.batch_size")
    parser.add_argument("--device", default="auto", help="trainer.device: auto | cpu | cuda")
    parser.add_argument("--profile", action="store_true", help="cProfile one run of each side")
    parser.add_argument("--template", type=Path, help="template to render (default: this one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        m = import_project(render(tmp, args.template))
        force_progress_bars(m)  # bars on, as on a terminal (see the docstring)
        data_root = tmp / "images"
        per_class = -(-args.images // len(m.sample.CLASSES))
        m.sample.write_sample(data_root, train_per_class=per_class, val_per_class=per_class // 4)
        overrides = [
            f"data.root={data_root}", "data.preload=cpu", f"data.image_size={args.image_size}",
            f"data.batch_size={args.batch_size}", f"trainer.device={args.device}",
            "trainer.progress_bar=true",
        ]  # fmt: skip
        cfg = m.config.load_config(None, [*overrides, f"trainer.epochs={args.epochs}"])
        warm_cfg = m.config.load_config(None, [*overrides, "trainer.epochs=1"])
        device = m.resolve_device(cfg.trainer.device)
        loaders = m.data.build_dataloaders(cfg)  # built once: both sides index the same tensors
        train_loader, val_loader, _ = loaders
        on_cuda = device.type == "cuda"
        name = (
            torch.cuda.get_device_name(device) if on_cuda else f"{torch.get_num_threads()} threads"
        )
        print(f"torch {torch.__version__}, device {device} ({name})")
        n_train, n_val = len(train_loader.dataset), len(val_loader.dataset)
        print(
            f"{cfg.model.name}, {n_train} train / {n_val} val "
            f"images {args.image_size}x{args.image_size} preloaded on the CPU, batch "
            f"{args.batch_size}: {len(train_loader)} steps/epoch + {len(val_loader)} val "
            f"batches, {args.epochs} epochs per run"
        )
        runs = tmp / "runs"
        sides = {"trainer": run_trainer, "raw": run_raw}
        warm = {
            s: fn(m, warm_cfg, loaders, device, runs / f"warm-{s}")[0] for s, fn in sides.items()
        }
        print(f"warm-up (1 epoch): trainer {warm['trainer'][0]:.2f} s, raw {warm['raw'][0]:.2f} s")
        wall, cpu = {"trainer": [], "raw": []}, {"trainer": [], "raw": []}
        for i in range(args.pairs):
            order = ("trainer", "raw") if i % 2 == 0 else ("raw", "trainer")
            rows = {}
            for side in order:
                (w, c), rows[side] = sides[side](m, cfg, loaders, device, runs / f"{i}-{side}")
                wall[side].append(w)
                cpu[side].append(c)
            t, r = rows["trainer"], rows["raw"]
            tw, rw, tc, rc = (
                wall["trainer"][-1],
                wall["raw"][-1],
                cpu["trainer"][-1],
                cpu["raw"][-1],
            )
            drift = max(
                abs(t[k] - r[k]) for k in ("train_loss", "train_acc", "val_loss", "val_acc")
            )
            print(
                f"pair {i + 1} ({order[0]} first): trainer {tw:.3f} s, raw {rw:.3f} s, "
                f"ratio {tw / rw:.3f} (cpu {tc / rc:.3f}); val_acc {t['val_acc']:.4f} vs "
                f"{r['val_acc']:.4f}, max metric diff {drift:.1e}"
            )
        median = report(wall, cpu, args.epochs * len(train_loader), args.epochs, device)
        if args.profile:
            profile_sides(m, cfg, loaders, device, runs, top=15)
        print(f"ratio trainer/raw: {median:.2f}")


if __name__ == "__main__":
    main()
