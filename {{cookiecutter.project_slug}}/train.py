"""Train a model: parse args -> config -> data -> model -> Trainer.fit.

Examples:
    python train.py                                   # configs/default.yaml, sample data
    python train.py trainer.epochs=20 data.root=/data/mine
    python train.py --config configs/my.yaml run_name=baseline
    python train.py --resume runs/baseline            # continue where it stopped
{% if cookiecutter.gpu == "multi" %}
    torchrun --standalone --nproc-per-node=4 train.py # DistributedDataParallel on 4 GPUs
{% endif %}
"""

import argparse
import logging
{% if cookiecutter.gpu == "multi" %}
import os
{% endif %}
import sys
import time
from pathlib import Path

from {{ cookiecutter.package_name }}.checkpoint import CheckpointError, load_checkpoint, resolve_checkpoint_path
from {{ cookiecutter.package_name }}.config import ConfigError, load_config, save_config
from {{ cookiecutter.package_name }}.data import DataError, build_dataloaders
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.plot import plot_curves
from {{ cookiecutter.package_name }}.trainer import Trainer
{% if cookiecutter.gpu == "multi" %}
from {{ cookiecutter.package_name }}.utils.distributed import (
    broadcast_from_main,
    cleanup_distributed,
    get_rank,
    is_main_process,
    setup_distributed,
)
{% else %}
from {{ cookiecutter.package_name }}.utils.device import resolve_device
{% endif %}
from {{ cookiecutter.package_name }}.utils.logs import error_message, setup_logging
from {{ cookiecutter.package_name }}.utils.seeding import seed_everything

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.yaml"

log = logging.getLogger("{{ cookiecutter.package_name }}.train")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help=f"YAML config (default: {DEFAULT_CONFIG.name})")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR_OR_CKPT", help="continue a run from its last.pt")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    return parser.parse_intermixed_args(argv)  # options and key=value in any order


def new_run_dir(cfg) -> Path:
    """A fresh run dir; an existing one is never reused, so nothing in it can be overwritten."""
    output_dir = Path(cfg.output_dir)
    if cfg.run_name:
        run_dir = output_dir / cfg.run_name
        if run_dir.exists():
            raise ConfigError(
                f"run directory {run_dir} already exists; pick another run_name=..., "
                f"or continue it with --resume {run_dir}"
            )
        return run_dir
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir, n = output_dir / stamp, 1
    while run_dir.exists():
        run_dir, n = output_dir / f"{stamp}-{n}", n + 1
    return run_dir


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
{% if cookiecutter.gpu == "multi" %}
    try:
        return run(args)
    finally:
        cleanup_distributed()


def run(args) -> int:
{% endif %}
    state = None
    if args.resume:
        if args.config:
            raise ConfigError("--resume uses the run's own config; pass changes as key=value overrides instead")
        ckpt_path = resolve_checkpoint_path(args.resume)
        if ckpt_path.parent.name != "checkpoints":
            raise ConfigError(
                f"--resume {args.resume}: expected a run dir or <run_dir>/checkpoints/*.pt, "
                "so the run continues in its own folder"
            )
        state = load_checkpoint(ckpt_path)
        cfg = load_config(base=state["config"], overrides=args.overrides)
        run_dir = ckpt_path.parent.parent  # <run_dir>/checkpoints/last.pt
    else:
        cfg = load_config(args.config or DEFAULT_CONFIG, args.overrides)
{% if cookiecutter.gpu == "multi" %}
        run_dir = None
{% else %}
        run_dir = new_run_dir(cfg)
{% endif %}
{% if cookiecutter.gpu == "multi" %}

    device = setup_distributed(cfg.trainer.device)  # torchrun: join the process group
    main_process = is_main_process()
    if not main_process:
        setup_logging(level=logging.WARNING)  # rank 0 reports; other ranks only warnings and errors
    if run_dir is None:
        # Rank 0 picks the run dir (timestamps could differ between ranks) and tells the others.
        picked = broadcast_from_main(_try(new_run_dir, cfg) if main_process else None)
        if isinstance(picked, Exception):
            raise picked
        run_dir = picked
{% endif %}
    cfg.output_dir, cfg.run_name = str(run_dir.parent), run_dir.name  # as resolved, for config.yaml

{% if cookiecutter.gpu == "multi" %}
    seed_everything(cfg.seed, cfg.trainer.deterministic)  # the same model init on every rank
{% else %}
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    device = resolve_device(cfg.trainer.device)
{% endif %}
    # Build everything before touching the run dir: a bad setting leaves nothing behind.
    train_loader, val_loader, data_info = build_dataloaders(cfg, state["data_info"] if state else None, device)
    model = build_model(cfg, data_info)
{% if cookiecutter.gpu == "multi" %}
    if get_rank():
        seed_everything(cfg.seed + get_rank(), cfg.trainer.deterministic)  # distinct dropout/augmentation per rank

    if main_process:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=state is not None)
        setup_logging(run_dir / "train.log")
        save_config(cfg, run_dir / "config.yaml")  # on resume: with this session's overrides
{% else %}

    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=state is not None)
    setup_logging(run_dir / "train.log")
    save_config(cfg, run_dir / "config.yaml")  # on resume: with this session's overrides
{% endif %}
    trainer = Trainer(cfg, model, train_loader, val_loader, data_info, run_dir, device)
    if state is not None:
        trainer.load_state_dict(state, ckpt_path)
{% if cookiecutter.gpu == "multi" %}
        if get_rank():  # the checkpoint holds rank 0's RNG state: move the others off it
            seed_everything(cfg.seed + 1000 * trainer.epoch + get_rank(), cfg.trainer.deterministic)
{% endif %}
        log.info("Resumed %s at epoch %d (step %d).", ckpt_path, trainer.epoch, trainer.step)
        if ckpt_path.name != "last.pt":
            log.warning("Resuming from %s, not last.pt: later epochs of this run will be replaced.", ckpt_path.name)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("Run dir %s | model %s (%s parameters) | device %s", run_dir, cfg.model.name, f"{n_params:,}", device)
    n_train, n_val = len(train_loader.dataset), len(val_loader.dataset)
    log.info("%d train / %d val samples, %d classes", n_train, n_val, len(data_info["classes"]))
    try:
        trainer.fit()
    except KeyboardInterrupt:
        log.warning("Interrupted. Continue with: python train.py --resume %s", run_dir)
        return 130
    best = "n/a" if trainer.best_metric is None else f"{trainer.best_metric:.4f}"
    log.info("Done. best %s = %s; checkpoints in %s", cfg.trainer.monitor, best, run_dir / "checkpoints")
{% if cookiecutter.gpu == "multi" %}
    if main_process:
        plot_curves(run_dir)  # curves.png; without matplotlib one warning, never an error
{% else %}
    plot_curves(run_dir)  # curves.png; without matplotlib one warning, never an error
{% endif %}
    return 0
{% if cookiecutter.gpu == "multi" %}


def _try(function, *args):
    """function(*args), or the ConfigError it raised (to hand to the other ranks)."""
    try:
        return function(*args)
    except ConfigError as err:
        return err
{% endif %}


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ConfigError, DataError, CheckpointError, FloatingPointError) as err:
{% if cookiecutter.gpu == "multi" %}
        rank = os.environ.get("RANK")  # set by torchrun
        print(f"error{f' (rank {rank})' if rank else ''}: {error_message(err)}", file=sys.stderr)
{% else %}
        print(f"error: {error_message(err)}", file=sys.stderr)
{% endif %}
        sys.exit(2)
