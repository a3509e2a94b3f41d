"""The generated loop vs Lightning 2.x vs the raw loop: the same training, in interleaved runs.

    pip install -r benchmarks/requirements.txt        # lightning: a benchmark-only dependency
    python benchmarks/lightning_compare.py [--epochs 2] [--pairs 5] [--images 1856]
                                           [--image-size 64] [--batch-size 64] [--augment]
                                           [--gpu single] [--no-lightning] [--template DIR]

It renders the template with its default answers (image_folder, gpu=single, use_prefetch=yes;
`--gpu none` for the CPU-only variant) into a temp folder, writes the project's own sample
images (1856 train images: 29 steps per epoch at batch 64), and builds the loaders with
`data.preload=cpu` (decoded once, batched by indexing; augmentation off unless --augment).
On the CPU, from the same seed, each side trains the project's default model (simple_cnn)
with the project's optimizer and scheduler on the same batches, and every epoch runs
validation and writes a best and a last checkpoint:

* generated: what `train.py` does after building data and model: logging to the run folder,
  then the project's documented training call (`fit_generated` in rendering.py: the
  `PKG.engine.Trainer` of the redesigned layout, or `PKG.trainer.Trainer` of the one before),
  with the default config otherwise, progress bars on (written to os.devnull).
* generated[prefetch_batches=0]: the same with `data.prefetch_batches=0`; only when the
  config has that key and its default is not 0.
* lightning: a LightningModule around the same model, `configure_optimizers` returning the
  project's optimizer and scheduler (stepped per epoch), `self.log` of train/val loss and
  accuracy per epoch, `ModelCheckpoint(monitor="val_acc", mode="max", save_last=True)`, a
  `CSVLogger` (the generated side writes metrics.csv too), otherwise Lightning's defaults
  (progress bar, model summary, 2 sanity-check val batches), as a user would start.
* raw: the shortest hand-written loop doing the same work (`run_raw` of overhead.py).

Every side is warmed up once (one epoch) so one-off costs (imports, first calls) are
excluded; a timed run includes building the Trainer (and optimizer) and `fit()`. Each pair runs
every side once, in an order rotated from pair to pair, so machine noise hits all alike. The
ratios are medians over pairs of per-pair ratios; the last lines are

    ratio generated/lightning: X.XX (median of N pairs)
    ratio generated/raw: X.XX

Targets (issue 10): generated <= 0.95x Lightning and <= 1.02x raw, with default settings.
Without lightning installed (or with --no-lightning) it compares generated and raw only and
says so. The default sizes take about 3-4 minutes on 2 CPU cores.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from overhead import Clock, run_raw, run_trainer
from rendering import (
    force_progress_bars,
    import_project,
    quiet_fds,
    render_image_folder_project,
    seed,
    seed_batch,
    seed_epoch,
)

NO_PREFETCH = "generated[prefetch_batches=0]"


def load_lightning():
    """The lightning package, or None when it is not installed."""
    try:
        import lightning
    except ImportError:
        return None
    return lightning


def lightning_module(L, model, m, cfg, train_loader):
    """A LightningModule doing the generated Trainer's work with the same model and optimizer."""

    class Classifier(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, inputs):
            return self.model(inputs)

        def on_train_epoch_start(self):
            # The same batches and dropout as the other sides: seeds from (seed, epoch).
            seed_epoch(m, cfg, train_loader, self.current_epoch)

        def training_step(self, batch, batch_idx):
            seed_batch(m, cfg, self.current_epoch, batch_idx)  # dropout, as the Trainer draws it
            inputs, targets = batch
            logits = self.model(inputs)
            loss = F.cross_entropy(logits, targets)
            n = targets.shape[0]
            accuracy = (logits.argmax(dim=1) == targets).float().mean()
            self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=n)
            self.log("train_acc", accuracy, on_step=False, on_epoch=True, batch_size=n)
            return loss

        def validation_step(self, batch, batch_idx):
            inputs, targets = batch
            logits = self.model(inputs)
            n = targets.shape[0]
            loss = F.cross_entropy(logits.float(), targets)
            accuracy = (logits.argmax(dim=1) == targets).float().mean()
            self.log("val_loss", loss, on_epoch=True, batch_size=n)
            self.log("val_acc", accuracy, on_epoch=True, batch_size=n)

        def configure_optimizers(self):
            optimizer = m.loop.build_optimizer(cfg, self.model)
            scheduler = m.loop.build_scheduler(cfg, optimizer)
            if scheduler is None:
                return optimizer
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
            }

    return Classifier()


def run_lightning(L, m, cfg, loaders, device, run_dir: Path):
    """Lightning's fit with a best/last ModelCheckpoint on val_acc and a CSVLogger."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    train_loader, val_loader, data_info = loaders
    seed(m, cfg.seed)
    model = m.models.build_model(cfg, data_info)
    clock = Clock(device)
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", monitor="val_acc", mode="max", save_last=True
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=cfg.trainer.epochs,
        default_root_dir=run_dir,
        logger=CSVLogger(run_dir),
        callbacks=[checkpoint],
    )
    trainer.fit(lightning_module(L, model, m, cfg, train_loader), train_loader, val_loader)
    elapsed = clock.stop()
    row = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return elapsed, row


def setup(args, tmp: Path):
    """Render, write the sample images; return project, configs, loaders, prefetch default."""
    answers = {"gpu": args.gpu, "use_github_actions": False}
    m = import_project(
        render_image_folder_project(tmp, "bench lightning", args.template, **answers)
    )
    force_progress_bars(m)  # bars on, as on a terminal; trainer.progress_bar still decides
    data_root = tmp / "images"
    per_class = -(-args.images // len(m.sample.CLASSES))
    with quiet_fds(2):  # the project's own bars (writing images, preloading)
        m.sample.write_sample(data_root, train_per_class=per_class, val_per_class=per_class // 4)
    overrides = [
        f"data.root={data_root}", "data.preload=cpu", f"data.image_size={args.image_size}",
        f"data.batch_size={args.batch_size}", "trainer.device=cpu", "trainer.progress_bar=true",
    ]  # fmt: skip
    defaults = m.config.load_config(None, overrides).data
    if not args.augment:
        overrides += [f"data.{k}=false" for k in ("random_resized_crop", "horizontal_flip")
                      if hasattr(defaults, k)]  # fmt: skip
    prefetch = getattr(defaults, "prefetch_batches", None)

    def config(*extra):
        return m.config.load_config(None, [*overrides, *extra])

    cfgs = {"generated": config}
    if prefetch:  # the key exists and prefetching is on by default
        cfgs[NO_PREFETCH] = lambda *extra: config("data.prefetch_batches=0", *extra)
    # The peers get plain loaders (built with prefetching off, in case the loaders ever carry it).
    with quiet_fds(2):
        plain = m.data.build_dataloaders(cfgs[NO_PREFETCH if prefetch else "generated"]())
        loaders = {"generated": m.data.build_dataloaders(config()) if prefetch else plain}
    if prefetch:
        loaders[NO_PREFETCH] = plain
    return m, cfgs, loaders, plain, prefetch


def print_pair(i: int, order, wall: dict, rows: dict) -> None:
    times = ", ".join(f"{side} {wall[side][-1]:.3f} s" for side in order)
    g = wall["generated"][-1]
    ratios = ", ".join(
        f"generated/{side} {g / wall[side][-1]:.3f}" for side in order if side != "generated"
    )
    accs = ", ".join(f"{side} {rows[side].get('val_acc', float('nan')):.4f}" for side in order)
    diff = max(abs(rows["generated"][k] - rows["raw"][k]) for k in ("train_loss", "val_acc"))
    print(f"pair {i + 1} ({order[0]} first): {times}")
    print(f"  {ratios}; val_acc {accs}; generated vs raw metric diff {diff:.1e}")


def summary(wall: dict, cpu: dict, pairs: int) -> None:
    for side in wall:
        med = statistics.median(wall[side])
        print(
            f"median {side}: {med:.3f} s wall, {statistics.median(cpu[side]):.3f} s cpu "
            f"(range {min(wall[side]):.3f} - {max(wall[side]):.3f} s)"
        )
    spread = max(max(v) / min(v) for v in wall.values())
    if spread > 1.25:
        print(
            f"warning: one side's run times vary {spread:.1f}x between runs: the machine is busy "
            "and the ratios are noisy; rerun when idle or with more --pairs"
        )

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(wall[a], wall[b], strict=True))

    peers = [p for p in ("lightning", "raw") if p in wall]
    generated = [g for g in ("generated", NO_PREFETCH) if g in wall]
    # Fastest runs: the least disturbed by other load on the machine.
    best = ", ".join(
        f"{g}/{p} {min(wall[g]) / min(wall[p]):.3f}" for g in generated for p in peers
    )
    print(f"best of {pairs}: {best}")
    if NO_PREFETCH in wall:
        for peer in peers:
            print(f"ratio {NO_PREFETCH}/{peer}: {ratio(NO_PREFETCH, peer):.2f}")
    if "lightning" in wall:
        median = ratio("generated", "lightning")
        print(f"ratio generated/lightning: {median:.2f} (median of {pairs} pairs)")
        print(f"ratio generated/raw: {ratio('generated', 'raw'):.2f}")
    else:
        print(f"ratio generated/raw: {ratio('generated', 'raw'):.2f} (median of {pairs} pairs)")


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed run")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved rounds timed")
    parser.add_argument("--images", type=int, default=1856, help="train images (29 steps of 64)")
    parser.add_argument("--image-size", type=int, default=64, help="data.image_size")
    parser.add_argument("--batch-size", type=int, default=64, help="data.batch_size")
    parser.add_argument("--augment", action="store_true", help="keep the default augmentation")
    parser.add_argument(
        "--gpu", default="single", choices=["single", "none"], help="template answer"
    )
    parser.add_argument("--no-lightning", action="store_true", help="generated and raw only")
    parser.add_argument("--template", type=Path, help="template to render (default: this one)")
    args = parser.parse_args()
    started = time.perf_counter()
    L = None if args.no_lightning else load_lightning()
    if L is None:
        why = "--no-lightning" if args.no_lightning else "lightning is not installed"
        print(
            f"{why}: comparing generated and raw only (pip install -r benchmarks/requirements.txt)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        m, cfgs, loaders, plain, prefetch = setup(args, tmp)
        device = torch.device("cpu")
        sides = {name: run_trainer for name in cfgs}
        peers = {"raw": run_raw}
        if L is not None:
            peers = {"lightning": lambda *a: run_lightning(L, *a), **peers}
        for name, fn in peers.items():  # plain loaders, the config without prefetching
            sides[name], loaders[name] = fn, plain
            cfgs[name] = cfgs.get(NO_PREFETCH, cfgs["generated"])
        train_loader, val_loader, _ = plain
        cfg = cfgs["generated"]()
        print(
            f"torch {torch.__version__}, lightning {L.__version__ if L else '-'}, {m.pkg} "
            f"({m.api} API), cpu, {torch.get_num_threads()} threads"
        )
        print(
            f"{cfg.model.name}, {len(train_loader.dataset)} train / {len(val_loader.dataset)} val "
            f"images {args.image_size}x{args.image_size} preloaded, augmentation "
            f"{'on' if args.augment else 'off'}, batch {args.batch_size}: {len(train_loader)} "
            f"steps/epoch + {len(val_loader)} val batches, {args.epochs} epochs per run; "
            f"data.prefetch_batches default {'(no such key)' if prefetch is None else prefetch}"
        )
        runs = tmp / "runs"

        def run(side: str, epochs: int, tag: str):
            side_cfg = cfgs[side](f"trainer.epochs={epochs}")
            with quiet_fds(1, 2):  # bars, logs and Lightning's messages go to os.devnull
                return sides[side](m, side_cfg, loaders[side], device, runs / f"{tag}-{side}")

        warm = {side: run(side, 1, "warm")[0][0] for side in sides}
        print("warm-up (1 epoch): " + ", ".join(f"{s} {t:.2f} s" for s, t in warm.items()))
        names = list(sides)
        wall, cpu = {s: [] for s in names}, {s: [] for s in names}
        for i in range(args.pairs):
            order = names[i % len(names) :] + names[: i % len(names)]
            rows = {}
            for side in order:
                (w, c), rows[side] = run(side, args.epochs, str(i))
                wall[side].append(w)
                cpu[side].append(c)
            print_pair(i, order, wall, rows)
        print(f"total {time.perf_counter() - started:.0f} s")
        summary(wall, cpu, args.pairs)


if __name__ == "__main__":
    main()
