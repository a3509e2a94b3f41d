"""GPU proof: every CUDA path of a generated project, measured on one device, in one table.

    python benchmarks/gpu_check.py [--repeats 3] [--steps 30] [--batch-size 128] [--cpu-smoke]
                                   [--only PART ...]

It renders the template twice (image_folder with gpu=single, and gpu=multi for torchrun) and
runs on cuda:0, in about 8 minutes on one GPU:

1. Throughput. torchvision's resnet18 (the project's `model.name=resnet18`) at 224 px on
   synthetic uint8 images preloaded on the GPU (the project's PreloadedLoader, augmented on the
   batch as `data.preload=device` does), one `train_one_epoch` of the project per timing. Each
   change against its baseline, the settings timed in rotating order, `--repeats` times:
   fp32 vs AMP bf16 vs AMP fp16 + GradScaler; channels_last off vs on; compile off vs on
   (timed after a compiling warm-up epoch); foreach vs fused AdamW. The rest is the default
   config (AMP bf16, channels_last, cudnn.benchmark, TF32 matmuls, fused AdamW).
2. Overhead. The generated Trainer vs the shortest raw loop (the two sides of
   benchmarks/overhead.py) on the same model (simple_cnn) and data (random 64 px images
   preloaded on the GPU, 782 steps of 64 per epoch as for CIFAR's 50,000, 2 epochs per run),
   in interleaved pairs. Target: time ratio <= 1.02.
3. Data paths. simple_cnn on the project's sample images at 64 px: lazy loading with worker
   processes vs `data.preload=cpu` vs `data.preload=device` (train.py's prefetch applied, as
   train.py does); then `data.prefetch_batches` 2 vs 0 with a slow loader: pinned float
   batches at 224 px for resnet18, each handed out after a CPU delay.
   Then `data.decode_device` cpu vs cuda: the one-time preload decode of 256 photo-sized JPEGs
   (2000x1500 to 224 px) by the CPU workers vs in batches on the GPU (measured, not judged).
   Then `data.preload=cpu` on the GPU (part `preload_transfer`): 2048 stored 256 px uint8 images
   cropped to 224 with augmentation, each batch gathered into pageable memory and augmented to
   float32 on the CPU (before) vs gathered into pinned memory, copied as uint8 and augmented on
   the GPU (now): the loader alone, then resnet18 epochs; and the two give equal val batches.
4. Correctness.
   - `torchrun --nproc-per-node=1` (NCCL) trains an epoch of the gpu=multi project; the
     val_loss and val_acc it wrote to metrics.csv equal those `evaluate.py` prints.
   - With `trainer.deterministic=true`, a run stopped by Ctrl-C in epoch 2 and resumed ends
     with the weights (every tensor equal) and metrics of an uninterrupted one.
   - No host sync per step: the profiler counts cudaStreamSynchronize / cudaDeviceSynchronize /
     cudaEventSynchronize calls and `.item()` reads (aten::_local_scalar_dense) in an epoch of
     50 steps and one of 10 (log_interval above both, so only the epoch's end reads); the
     difference per step must be 0.

The table gives setting, samples/s, ratio to the baseline (median of per-repeat ratios), and
the peak memory the step allocated above what was allocated before it. Then one line per
check, and last `verdict: PASS` or `verdict: FAIL (<checks>)`, with exit code 1 on FAIL. A
path counts as slower than its baseline below a ratio of 0.97 (timing noise).

Without CUDA it prints that it skipped and exits 0. `--cpu-smoke` runs every part on the CPU at
toy sizes, to check the script itself where no GPU is: the speed ratios are printed but not
judged there (AMP, channels_last and prefetch do nothing on the CPU, compile is left out), the
correctness checks are (with gloo instead of NCCL).
"""

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn
from image_decode import write_photos
from overhead import run_raw, run_trainer
from rendering import close_logging, import_project, quiet_fds, render_image_folder_project

SLOWER = 0.97  # a ratio below this is a path slower than its baseline, beyond timing noise
MAX_OVERHEAD = 1.02
NUM_CLASSES = 10
SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
HOST_READS = "aten::_local_scalar_dense"  # .item(), bool(tensor), tensor.tolist() ...


class Sizes:
    """What each part runs: the real sizes on a GPU, toy ones for --cpu-smoke."""

    def __init__(self, args, smoke: bool):
        self.smoke = smoke
        self.batch = 8 if smoke else args.batch_size
        self.steps = 2 if smoke else args.steps
        self.repeats = 1 if smoke else args.repeats
        self.image = 32 if smoke else 224
        self.small_image = 32 if smoke else 64
        # A CIFAR-sized epoch (782 steps of 64): the per-epoch costs (validation, two fsynced
        # checkpoints, metrics.csv) weigh on it as on a real run's.
        self.overhead_steps = 4 if smoke else 782
        self.pairs = 1 if smoke else 4
        self.per_class = 16 if smoke else 1024  # sample images per class (4 classes)
        self.workers = 0 if smoke else max(1, min(8, (os.cpu_count() or 2) - 2))


class Table:
    def __init__(self):
        self.rows, self.checks = [], []

    def row(self, section, setting, rate=None, ratio=None, baseline="", memory=None) -> None:
        self.rows.append((section, setting, rate, ratio, baseline, memory))

    def check(self, name: str, ok: bool | None, detail: str) -> None:
        """ok None: measured and printed, not judged (the CPU smoke run's speed figures)."""
        self.checks.append((name, ok, detail))

    def speed_check(self, name: str, ratio: float, smoke: bool, minimum: float = SLOWER) -> None:
        self.check(
            name, None if smoke else ratio >= minimum, f"ratio {ratio:.2f} (needs >= {minimum})"
        )

    def print(self) -> bool:
        print(
            f"\n{'section':<11} {'setting':<34} {'samples/s':>10} {'ratio':>6}  "
            f"{'vs':<26} {'peak MiB':>8}"
        )
        for section, setting, rate, ratio, baseline, memory in self.rows:
            rate = f"{rate:10.0f}" if rate is not None else f"{'-':>10}"
            ratio = f"{ratio:6.2f}" if ratio is not None else f"{'-':>6}"
            memory = f"{memory / 2**20:8.0f}" if memory is not None else f"{'n/a':>8}"
            print(f"{section:<11} {setting:<34} {rate} {ratio}  {baseline:<26} {memory}")
        print()
        for name, ok, detail in self.checks:
            print(f"{ {True: 'PASS', False: 'FAIL', None: 'info'}[ok]:<4}  {name}: {detail}")
        failed = [name for name, ok, _ in self.checks if ok is False]
        print(f"verdict: FAIL ({', '.join(failed)})" if failed else "verdict: PASS")
        return not failed


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def modules(m) -> dict:
    """The generated package's modules this script uses beyond the ones `import_project` gives."""
    names = ("data.preload", "data.augment", "data.prefetch", "data.loaders", "device")
    return {name.split(".")[-1]: importlib.import_module(f"{m.pkg}.{name}") for name in names}


def data_info(size: int) -> dict:
    classes = [f"class{i}" for i in range(NUM_CLASSES)]
    shape = {"num_outputs": NUM_CLASSES, "in_channels": 3, "image_size": size, "image_mode": "RGB"}
    return {"classes": classes, **shape, "mean": [0.5] * 3, "std": [0.25] * 3}


def synthetic_loader(m, cfg, n: int, size: int, batch: int, device, augment=True):
    """n random uint8 images on `device`, batched (and augmented) as data.preload=device does."""
    mods = modules(m)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g).to(device)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=g).to(device)
    aug = mods["augment"].Augmentation.from_config(cfg) if augment else None
    transform = mods["augment"].BatchTransform([0.5] * 3, [0.25] * 3, aug)
    generator = torch.Generator().manual_seed(cfg.seed)
    return mods["preload"].PreloadedLoader(images, labels, batch, augment, generator, transform)


class Setting:
    """One configuration's model, optimizer and loop state, trained one epoch per `run()`."""

    def __init__(self, m, cfg, loader, device, run_dir: Path, foreach: bool = False):
        torch.manual_seed(cfg.seed)
        self.m, self.cfg, self.loader, self.device, self.epoch = m, cfg, loader, device, 0
        model = m.models.build_model(cfg, data_info(cfg.data.image_size)).to(device)
        model = m.loop.prepare_model(model, cfg, device)  # channels_last, compile: as train.py
        optimizer = m.loop.build_optimizer(cfg, model)
        if foreach:  # the same parameter groups, one kernel per tensor group instead of fused
            groups = [
                {"params": g["params"], "weight_decay": g["weight_decay"]}
                for g in optimizer.param_groups
            ]
            optimizer = torch.optim.AdamW(groups, lr=cfg.optim.lr, foreach=True, fused=False)
        info, criterion = data_info(cfg.data.image_size), nn.CrossEntropyLoss()
        # The Trainer applies the GradScaler, as it does for train.py.
        trainer_args = (
            cfg,
            model,
            criterion,
            optimizer,
            None,
            loader,
            loader,
            info,
            run_dir,
            device,
        )
        self.trainer = m.loop.Trainer(*trainer_args)

    def run(self) -> tuple[float, int | None]:
        """(samples/s, peak bytes allocated above the start) of one training epoch."""
        t, cuda = self.trainer, self.device.type == "cuda"
        sync(self.device)
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
        start = time.perf_counter()
        step_args = (t.model, t.criterion, t.optimizer, self.loader)
        step_kwargs = {"scaler": t.scaler, "device": self.device, "cfg": self.cfg}
        stats = self.m.loop.train_one_epoch(*step_args, epoch=self.epoch, **step_kwargs)
        sync(self.device)
        seconds = time.perf_counter() - start
        self.epoch += 1
        peak = torch.cuda.max_memory_allocated(self.device) - base if cuda else None
        return stats["num_samples"] / seconds, peak


def rotate(settings: dict, repeats: int) -> dict:
    """One warm-up epoch each, then `repeats` rounds, each starting one setting later.

    Returns name -> [(samples/s, peak bytes)] per round."""
    for setting in settings.values():
        setting.run()
    names, results = list(settings), {name: [] for name in settings}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            results[name].append(settings[name].run())
    return results


def ratio_of(results: dict, name: str, baseline: str) -> float:
    """Median over repeats of the per-repeat speed ratio name / baseline."""
    pairs = zip(results[name], results[baseline], strict=True)
    return statistics.median(rate / base for (rate, _), (base, _) in pairs)


def add_rows(table: Table, section: str, results: dict, baseline: str, labels: dict) -> dict:
    ratios = {}
    for name, label in labels.items():
        rates = [rate for rate, _ in results[name]]
        peaks = [peak for _, peak in results[name] if peak is not None]
        ratios[name] = ratio_of(results, name, baseline)
        vs = "(baseline)" if name == baseline else labels[baseline]
        peak = max(peaks) if peaks else None
        table.row(section, label, statistics.median(rates), ratios[name], vs, peak)
    return ratios


def throughput(m, overrides, sizes: Sizes, device, tmp: Path, table: Table) -> None:
    base = [*overrides, "model.name=resnet18", f"data.image_size={sizes.image}"]
    base += [f"data.batch_size={sizes.batch}", "trainer.log_interval=100000"]
    variants = {
        "fp32": ["trainer.amp=false"],
        "bf16": ["trainer.amp_dtype=bfloat16"],
        "fp16": ["trainer.amp_dtype=float16"],
        "nchw": ["trainer.amp_dtype=bfloat16", "trainer.channels_last=false"],
        "foreach": ["trainer.amp_dtype=bfloat16"],
    }
    if not sizes.smoke:  # inductor's CPU build takes minutes on a small machine
        variants["compiled"] = ["trainer.amp_dtype=bfloat16", "trainer.compile=true"]
    settings = {}
    loader = None
    for name, extra in variants.items():
        cfg = m.config.load_config(None, [*base, *extra])
        loader = loader or synthetic_loader(
            m, cfg, sizes.batch * sizes.steps, sizes.image, sizes.batch, device
        )
        settings[name] = Setting(m, cfg, loader, device, tmp / name, foreach=name == "foreach")
    results = rotate(settings, sizes.repeats)
    precision = add_rows(
        table, "precision", results, "fp32",
        {"fp32": "fp32 (trainer.amp=false)", "bf16": "AMP bf16", "fp16": "AMP fp16 + GradScaler"},
    )  # fmt: skip
    layout = add_rows(
        table, "layout", results, "nchw", {"nchw": "channels_last=false", "bf16": "channels_last"}
    )
    fused = add_rows(
        table, "optimizer", results, "foreach", {"foreach": "AdamW foreach", "bf16": "AdamW fused"}
    )
    table.speed_check("AMP bf16 vs fp32", precision["bf16"], sizes.smoke)
    table.speed_check("AMP fp16 + GradScaler vs fp32", precision["fp16"], sizes.smoke)
    table.speed_check("channels_last vs NCHW", layout["bf16"], sizes.smoke)
    table.speed_check("fused vs foreach AdamW", fused["bf16"], sizes.smoke)
    if "compiled" in settings:
        compiled = add_rows(
            table, "compile", results, "bf16", {"bf16": "eager", "compiled": "torch.compile"}
        )
        table.speed_check("torch.compile vs eager", compiled["compiled"], sizes.smoke)
    else:
        table.check(
            "torch.compile vs eager", None, "not run in --cpu-smoke (inductor's CPU build is slow)"
        )


def overhead(m, overrides, sizes: Sizes, device, tmp: Path, table: Table) -> None:
    """benchmarks/overhead.py's trainer and raw sides on data preloaded on the device."""
    size, batch = sizes.small_image, 64 if not sizes.smoke else sizes.batch
    cfg = m.config.load_config(
        None, [*overrides, f"data.image_size={size}", f"data.batch_size={batch}"]
    )
    cfg.trainer.epochs, cfg.trainer.progress_bar = 2 if not sizes.smoke else 1, False
    train = synthetic_loader(m, cfg, batch * sizes.overhead_steps, size, batch, device)
    val = synthetic_loader(
        m, cfg, batch * max(2, sizes.overhead_steps // 8), size, batch, device, augment=False
    )
    loaders = (train, val, data_info(size))
    sides = {"trainer": run_trainer, "raw": run_raw}
    times = {side: [] for side in sides}
    with quiet_fds(2):  # the Trainer's console log lines; its train.log is written as usual
        for side, fn in sides.items():  # warm-up
            fn(m, cfg, loaders, device, tmp / f"warm-{side}")
        for i in range(sizes.pairs):
            for side in ("trainer", "raw") if i % 2 == 0 else ("raw", "trainer"):
                (wall, _), _ = sides[side](m, cfg, loaders, device, tmp / f"{i}-{side}")
                times[side].append(wall)
    close_logging(m)
    samples = cfg.trainer.epochs * train.num_samples()
    ratios = [t / r for t, r in zip(times["trainer"], times["raw"], strict=True)]
    ratio = statistics.median(ratios)
    table.row("overhead", "raw loop", samples / statistics.median(times["raw"]), 1.0, "(baseline)")
    trainer_rate = samples / statistics.median(times["trainer"])
    table.row("overhead", "generated Trainer", trainer_rate, 1 / ratio, "raw loop")
    ok = None if sizes.smoke else ratio <= MAX_OVERHEAD
    detail = f"{ratio:.3f} (needs <= {MAX_OVERHEAD}), median of {len(ratios)} pairs"
    table.check("Trainer/raw time", ok, detail)


class SlowBatches:
    """Pinned CPU batches handed out after `delay` seconds each: a loader slower than a copy."""

    def __init__(self, batches: list, steps: int, delay: float):
        self.batches, self.steps, self.delay = batches, steps, delay
        self.dataset, self.generator = None, torch.Generator()  # what the loop and Prefetcher read

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for i in range(self.steps):
            time.sleep(self.delay)
            yield self.batches[i % len(self.batches)]


def data_paths(m, overrides, sizes: Sizes, device, tmp: Path, table: Table) -> None:
    mods = modules(m)
    root = m.sample.write_sample(tmp / "sample", sizes.per_class, max(2, sizes.per_class // 8))
    base = [
        *overrides,
        f"data.root={root}",
        f"data.image_size={sizes.small_image}",
        "trainer.log_interval=100000",
    ]
    base += [
        f"data.batch_size={sizes.batch if sizes.smoke else 128}",
        f"data.num_workers={sizes.workers}",
    ]
    settings = {}
    for preload in ("false", "cpu", "device"):
        cfg = m.config.load_config(None, [*base, f"data.preload={preload}"])
        start = time.perf_counter()
        with quiet_fds(2):
            loader, _, _ = m.data.build_dataloaders(cfg, None, device)
        if preload != "false":
            table.check(
                f"preload={preload} one-time decode", None, f"{time.perf_counter() - start:.1f} s"
            )
        loader = mods["prefetch"].with_prefetch(loader, cfg, device)  # as train.py does
        settings[preload] = Setting(m, cfg, loader, device, tmp / f"preload-{preload}")
    results = rotate(settings, sizes.repeats)
    labels = {
        "false": f"lazy, {sizes.workers} workers",
        "cpu": "data.preload=cpu",
        "device": "data.preload=device",
    }
    ratios = add_rows(table, "data", results, "false", labels)
    table.speed_check("preload=cpu vs lazy", ratios["cpu"], sizes.smoke)
    table.speed_check("preload=device vs lazy", ratios["device"], sizes.smoke)

    # Prefetch: resnet18 on pinned 224 px float batches that arrive late; copies can overlap steps.
    batch, size = sizes.batch, sizes.image
    pin = (lambda t: t.pin_memory()) if device.type == "cuda" else (lambda t: t)
    batches = [
        (pin(torch.randn(batch, 3, size, size)), torch.randint(0, NUM_CLASSES, (batch,)))
        for _ in range(4)
    ]
    settings = {}
    for depth in (0, 2):
        cfg = m.config.load_config(
            None, [*overrides, "model.name=resnet18", f"data.image_size={size}"]
        )
        cfg.data.prefetch_batches, cfg.trainer.log_interval = depth, 100000
        loader = mods["prefetch"].with_prefetch(
            SlowBatches(batches, sizes.steps, 0.003), cfg, device
        )
        settings[depth] = Setting(m, cfg, loader, device, tmp / f"prefetch-{depth}")
    results = rotate(settings, sizes.repeats)
    ratios = add_rows(
        table, "prefetch", results, 0, {0: "slow loader, prefetch 0", 2: "slow loader, prefetch 2"}
    )
    table.speed_check("prefetch_batches=2 vs 0 (slow loader)", ratios[2], sizes.smoke)


def decoding(m, overrides, sizes: Sizes, device, tmp: Path, table: Table) -> None:
    """data.decode_device: preloading photo-sized JPEGs, decoded by CPU workers vs on the GPU."""
    if device.type != "cuda":
        table.check("data.decode_device=cuda vs cpu", None, "not run in --cpu-smoke (needs CUDA)")
        return
    count = 256
    write_photos(tmp / "photos", count, 2000, 1500)  # train and val hold the same files
    base = [*overrides, f"data.root={tmp / 'photos'}", "data.image_size=224", "data.preload=cpu"]
    base += [f"data.num_workers={sizes.workers}", "data.mean=[0.5,0.5,0.5]", "data.std=[.2,.2,.2]"]
    rates = {}
    for where in ("cpu", "cuda"):
        cfg = m.config.load_config(None, [*base, f"data.decode_device={where}"])
        start = time.perf_counter()
        with quiet_fds(2):
            m.data.build_dataloaders(cfg, None, device)
        rates[where] = 2 * count / (time.perf_counter() - start)
    table.row("decode", f"{count} JPEGs 2000x1500, cpu workers", rates["cpu"], 1.0, "(baseline)")
    ratio = rates["cuda"] / rates["cpu"]
    table.row("decode", "decode_device=cuda (nvJPEG)", rates["cuda"], ratio, "cpu workers")
    table.check("data.decode_device=cuda vs cpu (preload decode)", None, f"ratio {ratio:.2f}")


def count_host_reads(setting: Setting) -> int:
    """Host syncs during one training epoch of `setting`, counted by the profiler.

    On CUDA: the runtime's synchronize calls (`.item()` on a CUDA tensor is a copy plus one). On
    the CPU no sync exists; `.item()` reads are counted instead, CPU scalars included (the
    non-fused AdamW reads its CPU step counts), so that figure is shown, not judged.
    """
    cuda = setting.device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU]
    if cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        setting.run()
    names = SYNC_EVENTS if cuda else (HOST_READS,)
    return sum(event.count for event in prof.key_averages() if event.key in names)


def host_syncs(m, overrides, sizes: Sizes, device, tmp: Path, table: Table) -> None:
    """Reads in an epoch of 50 steps minus those in one of 10: what every step adds."""
    cfg = m.config.load_config(
        None, [*overrides, f"data.image_size={sizes.small_image}", "data.batch_size=16"]
    )
    cfg.trainer.log_interval = 1000  # above both epochs: only the epoch's end reads
    counts = {}
    for steps in (50, 10):
        loader = synthetic_loader(m, cfg, 16 * steps, sizes.small_image, 16, device)
        setting = Setting(m, cfg, loader, device, tmp / f"sync-{steps}")
        setting.run()  # warm-up (cudnn.benchmark's trials, lazy inits)
        counts[steps] = count_host_reads(setting)
    per_step = (counts[50] - counts[10]) / 40
    detail = (
        f"{per_step:g} per step ({counts[50]} in an epoch of 50 steps, {counts[10]} in one of 10)"
    )
    what = "host syncs" if device.type == "cuda" else "CPU: .item() reads (not syncs)"
    table.check(
        f"{what} per training step", per_step == 0 if device.type == "cuda" else None, detail
    )


def run(cmd: list, cwd: Path, what: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


def ddp_matches_evaluate(multi: Path, data_root: Path, device, tmp: Path, table: Table) -> None:
    runs = tmp / "ddp-runs"
    overrides = [f"data.root={data_root}", f"output_dir={runs}", "run_name=ddp"]
    overrides += [
        "trainer.epochs=1",
        "trainer.progress_bar=false",
        f"trainer.device={device.type}",
    ]
    overrides.append(f"data.num_workers={2 if device.type == 'cuda' else 0}")
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=1",
    ]
    run([*torchrun, "train.py", *overrides], multi, "torchrun train.py")
    last = (runs / "ddp" / "metrics.csv").read_text().strip().splitlines()
    row = dict(zip(last[0].split(","), last[-1].split(","), strict=True))
    checkpoint = str(runs / "ddp" / "checkpoints" / "last.pt")
    result = json.loads(run([sys.executable, "evaluate.py", checkpoint], multi, "evaluate.py"))
    loss_diff = abs(float(row["val_loss"]) - result["loss"])
    acc_diff = abs(float(row["val_acc"]) - result["accuracy"])
    backend = "NCCL" if device.type == "cuda" else "gloo"
    detail = f"val_loss diff {loss_diff:.1e}, val_acc diff {acc_diff:.1e} "
    detail += f"({backend}, {result['num_samples']} samples)"
    table.check(
        "torchrun (1 process) val metrics == evaluate.py",
        loss_diff <= 1e-6 and acc_diff == 0,
        detail,
    )


def resume_is_exact(single: Path, data_root: Path, device, tmp: Path, table: Table) -> None:
    """In a fresh process: deterministic settings (CUBLAS_WORKSPACE_CONFIG) come before CUDA."""
    cmd = [sys.executable, __file__, "--child-resume", str(single), str(data_root)]
    cmd += [str(tmp / "resume-runs"), "--device", device.type]
    result = json.loads(run(cmd, single, "the resume check").strip().splitlines()[-1])
    detail = f"{result['equal']} of {result['tensors']} tensors equal, metrics rows equal: "
    detail += f"{result['rows_equal']}, exit code of the interrupted run "
    detail += f"{result['interrupted_exit']} (130: Ctrl-C)"
    ok = (
        result["equal"] == result["tensors"]
        and result["rows_equal"]
        and result["interrupted_exit"] == 130
    )
    table.check("deterministic run, Ctrl-C in epoch 2 + --resume == uninterrupted", ok, detail)


def child_resume(project: Path, data_root: Path, runs: Path, device: str) -> None:
    """Train 2 epochs; again, interrupted in epoch 2, and resume; print a JSON comparison."""
    sys.path.insert(0, str(project))
    spec = importlib.util.spec_from_file_location("train", project / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    settings = [
        f"data.root={data_root}",
        f"output_dir={runs}",
        "trainer.epochs=2",
        "trainer.deterministic=true",
    ]
    settings += [
        "trainer.progress_bar=false",
        "model.dropout=0.3",
        f"trainer.device={device}",
        "data.batch_size=16",
    ]
    assert train.main([*settings, "run_name=straight"]) == 0
    steps = len(train.build_dataloaders(train.load_run(None, None, settings)[0])[0])
    assert steps >= 2, f"{steps} steps per epoch: too few to stop inside epoch 2"
    real_build_model = train.build_model

    def build_and_interrupt(*args):
        model, done = real_build_model(*args), [0]

        def hook(module, inputs):  # Ctrl-C in the second training step of epoch 2
            if module.training:
                if done[0] == steps + 1:
                    raise KeyboardInterrupt
                done[0] += 1

        model.register_forward_pre_hook(hook)
        return model

    train.build_model = build_and_interrupt
    interrupted_exit = train.main([*settings, "run_name=interrupted"])
    train.build_model = real_build_model
    assert train.main(["--resume", str(runs / "interrupted")]) == 0
    straight, resumed = (
        torch.load(runs / name / "checkpoints" / "last.pt", weights_only=True)
        for name in ("straight", "interrupted")
    )
    equal = sum(torch.equal(straight["model"][k], resumed["model"][k]) for k in straight["model"])
    rows = [
        [{k: v for k, v in r.items() if k != "time_s"} for r in s["history"]]
        for s in (straight, resumed)
    ]
    summary = {"tensors": len(straight["model"]), "equal": equal, "rows_equal": rows[0] == rows[1]}
    print(json.dumps({**summary, "interrupted_exit": interrupted_exit}))


class LoaderEpoch:
    """One pass over `loader`, each batch moved to `device` as the loop moves it."""

    def __init__(self, loader, device):
        self.loader, self.device = loader, device

    def run(self) -> tuple[float, int | None]:
        cuda = self.device.type == "cuda"
        sync(self.device)
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
        start, count = time.perf_counter(), 0
        for inputs, targets in self.loader:
            inputs = inputs.to(self.device, non_blocking=True)
            count += len(targets.to(self.device, non_blocking=True))
        sync(self.device)
        peak = torch.cuda.max_memory_allocated(self.device) - base if cuda else None
        return count / (time.perf_counter() - start), peak


def preload_transfer(m, overrides, sizes: Sizes, device, tmp: Path, table: Table) -> None:
    """data.preload=cpu on a GPU: pageable float batches augmented on the CPU (before) vs pinned
    uint8 batches copied and augmented on the GPU (now)."""
    mods = modules(m)
    n, stored, size = (64, 40, 32) if sizes.smoke else (2048, 256, 224)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, stored, stored), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    cfg = m.config.load_config(
        None, [*overrides, "model.name=resnet18", f"data.image_size={size}"]
    )
    cfg.trainer.log_interval = 100000
    pinned = partial(mods["loaders"].take_pinned, device=device) if device.type == "cuda" else None

    def loader(take, augment=True):
        aug = mods["augment"].Augmentation.from_config(cfg) if augment else None
        transform = mods["augment"].BatchTransform([0.5] * 3, [0.25] * 3, aug, None, size)
        generator = torch.Generator().manual_seed(0)
        batches = mods["preload"].PreloadedLoader(
            images, labels, sizes.batch, augment, generator, transform
        )
        batches.take = take
        return batches

    plain, pinned_val = loader(None, augment=False), loader(pinned, augment=False)
    same = all(
        torch.allclose(x.to(device), x_pinned, atol=1e-5) and torch.equal(y.to(device), y_pinned)
        for (x, y), (x_pinned, y_pinned) in zip(plain, pinned_val, strict=True)
    )
    table.check("preload=cpu pinned uint8 val batches equal pageable ones", same, f"{n} images")
    for label, make in (
        ("loader", lambda batches: LoaderEpoch(batches, device)),
        ("resnet18", lambda batches: Setting(m, cfg, batches, device, tmp / f"pin-{id(batches)}")),
    ):
        settings = {"pageable": make(loader(None)), "pinned": make(loader(pinned))}
        results = rotate(settings, sizes.repeats)
        names = {
            "pageable": f"{label}: pageable float, CPU aug",
            "pinned": f"{label}: pinned uint8",
        }
        ratios = add_rows(table, "preload", results, "pageable", names)
        name = f"preload=cpu pinned uint8 vs pageable float ({label})"
        table.speed_check(name, ratios["pinned"], sizes.smoke)


PARTS = ("throughput", "overhead", "data_paths", "decoding", "preload_transfer", "host_syncs")


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per comparison")
    parser.add_argument(
        "--steps", type=int, default=30, help="training steps per timed epoch (throughput)"
    )
    parser.add_argument("--batch-size", type=int, default=128, help="batch size at 224 px")
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="every part on the CPU at toy sizes"
    )
    parser.add_argument("--template", type=Path, help="template to render (default: this one)")
    parser.add_argument(
        "--only", nargs="+", choices=PARTS, help="run only these parts (no correctness launches)"
    )
    parser.add_argument("--child-resume", nargs=3, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_resume:
        child_resume(*args.child_resume, args.device)
        return 0
    if not torch.cuda.is_available() and not args.cpu_smoke:
        print(
            "gpu_check: skipped: no CUDA device here (torch.cuda.is_available() is False); "
            "--cpu-smoke checks the script"
        )
        return 0
    device = torch.device("cpu" if args.cpu_smoke else "cuda:0")
    sizes = Sizes(args, args.cpu_smoke)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        single = render_image_folder_project(
            tmp / "single", "gpu check", args.template, use_github_actions=False
        )
        multi = render_image_folder_project(tmp / "multi", "gpu check", args.template, gpu="multi")
        m = import_project(single)
        overrides = [
            f"trainer.device={device}",
            "trainer.progress_bar=false",
            f"output_dir={tmp / 'runs'}",
        ]
        cfg = m.config.load_config(None, overrides)
        modules(m)["device"].setup_device(
            cfg, device
        )  # cudnn.benchmark and TF32, as train.py sets them
        name = (
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else "CPU (--cpu-smoke: toy sizes)"
        )
        print(f"torch {torch.__version__}, {name}")
        table = Table()
        for part in [globals()[name] for name in args.only or PARTS]:
            part_start = time.perf_counter()
            part(m, overrides, sizes, device, tmp / part.__name__, table)
            print(f"{part.__name__}: {time.perf_counter() - part_start:.0f} s", flush=True)
        if args.only:
            return 0 if table.print() else 1
        data_root = m.sample.write_sample(
            tmp / "small-sample", 24 if not sizes.smoke else 8, 6 if not sizes.smoke else 2
        )
        ddp_matches_evaluate(multi, data_root, device, tmp, table)
        resume_is_exact(single, data_root, device, tmp, table)
        print(f"correctness: done, {time.perf_counter() - started:.0f} s in all", flush=True)
        passed = table.print()  # its last line is the verdict
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
