"""Train a model: config -> loaders -> model, criterion, optimizer, scheduler -> Trainer.fit.

Examples:
    python train.py                                   # configs/default.yaml, sample data
    python train.py trainer.epochs=20 data.root=/data/mine
    python train.py --config configs/my.yaml run_name=baseline
    python train.py --resume runs/baseline            # continue where it stopped
    python train.py run_name=job42 --resume auto      # a requeued job: continue runs/job42, or start it
    torchrun --standalone --nproc-per-node=4 train.py # DistributedDataParallel on 4 GPUs
"""

import argparse
import logging
import os
import sys
from pathlib import Path

from {{ cookiecutter.package_name }}.checkpoint import load_run, new_run_dir
from {{ cookiecutter.package_name }}.config import save_config
from {{ cookiecutter.package_name }}.data import build_dataloaders, eval_datasets
from {{ cookiecutter.package_name }}.data.prefetch import with_prefetch  # use_prefetch
from {{ cookiecutter.package_name }}.device import setup_device
from {{ cookiecutter.package_name }}.distributed import (
    barrier,
    broadcast_from_main,
    cleanup_distributed,
    is_main_process,
    report_options,
    setup_distributed,
    shard_loaders,
)
from {{ cookiecutter.package_name }}.engine import Trainer, build_optimizer, build_scheduler, prepare_model
from {{ cookiecutter.package_name }}.errors import ConfigError, run_main
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.plot import plot_curves
from {{ cookiecutter.package_name }}.preemption import fit_or_stop
from {{ cookiecutter.package_name }}.report import predict_split, report_best
from {{ cookiecutter.package_name }}.task import build_criterion, describe
from {{ cookiecutter.package_name }}.tensorboard import TensorBoardLogger  # tensorboard
from {{ cookiecutter.package_name }}.tracker import Tracker  # tracker
from {{ cookiecutter.package_name }}.utils import derive_seed, seed_everything, setup_logging

log = logging.getLogger("{{ cookiecutter.package_name }}.train")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML config (default: configs/default.yaml)")
    resume_help = "continue a run from its last.pt (auto: <output_dir>/<run_name> if it has one, else start it)"
    parser.add_argument("--resume", metavar="RUN_DIR|CKPT|auto", help=resume_help)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    return parser.parse_intermixed_args(argv)  # options and key=value in any order


def main(argv=None, callbacks=()) -> int:
    args = parse_args(argv)
    setup_logging()
    try:
        return run(args, list(callbacks))
    finally:
        cleanup_distributed()


def run(args, callbacks: list) -> int:
    cfg, state, ckpt_path = load_run(args.config, args.resume, args.overrides)  # every rank reads the same config
    # torchrun: join the process group; rank 0 reports, other ranks only warnings and errors.
    device = setup_device(cfg, setup_distributed(cfg.trainer.device))
    if not is_main_process():
        setup_logging(level=logging.WARNING)
    run_dir = ckpt_path.parent.parent if state else None  # <run_dir>/checkpoints/last.pt
    if run_dir is None:
        # Rank 0 picks the run dir (timestamps could differ between ranks) and tells the others.
        restart = args.resume == "auto"  # with no checkpoint to continue: start the run (again)
        run_dir = broadcast_from_main(_try(new_run_dir, cfg, restart) if is_main_process() else None)
        if isinstance(run_dir, Exception):
            raise run_dir
    cfg.output_dir = str(run_dir.parent)  # as resolved, for config.yaml
    cfg.run_name = run_dir.name

    # Build everything before touching the run dir: a bad setting leaves nothing behind.
    train_loader, val_loader, data_info = build_dataloaders(cfg, state["data_info"] if state else None, device)
    eval_sets = eval_datasets(cfg, data_info, val_loader)  # val, and test if there is one: checked before training
    train_loader, val_loader = shard_loaders(train_loader, val_loader, cfg)
    train_loader = with_prefetch(train_loader, cfg, device)  # use_prefetch
    # Seeded here, after the data: the init is the same whether or not data loading drew random numbers.
    seed_everything(derive_seed(cfg.seed, "init"), cfg.trainer.deterministic)  # the same init on every rank
    # channels_last, DDP under torchrun, compile: before the optimizer takes the model's tensors
    model = prepare_model(build_model(cfg, data_info).to(device), cfg, device)
    criterion = build_criterion(cfg, data_info).to(device)  # task.py: the loss, with its class weights
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    trainer = Trainer(cfg, model, criterion, optimizer, scheduler, train_loader, val_loader, data_info, run_dir, device)
    if state is not None:
        trainer.load_state_dict(state, ckpt_path)

    if is_main_process():
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=state is not None or args.resume == "auto")
        setup_logging(run_dir / "train.log")
        save_config(cfg, run_dir / "config.yaml")  # on resume: with this session's overrides
        trainer.epoch_callbacks.append(TensorBoardLogger(run_dir / "tensorboard", trainer.eval_model, val_loader))  # tensorboard
        tracker = Tracker(cfg, run_dir, trainer.history)  # tracker
        trainer.epoch_callbacks.append(tracker)  # tracker
        trainer.epoch_callbacks += callbacks  # called after each epoch, e.g. by sweep.py
    if state is not None:
        log.info("Resumed %s at epoch %d (step %d).", ckpt_path, trainer.epoch, trainer.step)
        if ckpt_path.name != "last.pt":
            log.warning("Resuming from %s, not last.pt: later epochs of this run will be replaced.", ckpt_path.name)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("Run dir %s | model %s (%s parameters) | device %s", run_dir, cfg.model.name, f"{n_params:,}", device)
    n_train = len(train_loader.dataset)
    n_val = len(val_loader.dataset)
    log.info("%d train / %d val samples, %s", n_train, n_val, describe(data_info))
    if (code := fit_or_stop(trainer, cfg, run_dir)) is not None:  # stopped on request, Ctrl-C twice, a fault
        return code
    best = "n/a" if trainer.best.best is None else f"{trainer.best.best:.4f}"
    log.info("Done. best %s = %s; checkpoints in %s", cfg.trainer.monitor, best, run_dir / "checkpoints")
    if is_main_process():
        plot_curves(run_dir)  # curves.png
    barrier(device)  # rank 0 has written best.pt
    # The best epoch's weights on val (and test), every sample once over the ranks; rank 0 writes eval/.
    options = report_options(predict_split)
    report_best(trainer.eval_model, criterion, eval_sets, cfg, run_dir, device, **options)
    if is_main_process():  # tracker
        tracker.finish()  # config.yaml, curves.png and the reports  # tracker
    return 0


def _try(function, *args):
    """function(*args), or the error it raised (to hand to the other ranks)."""
    try:
        return function(*args)
    except ConfigError as err:
        return err


if __name__ == "__main__":
    rank = os.environ.get("RANK")  # set by torchrun
    sys.exit(run_main(main, prefix=f"error (rank {rank})" if rank else "error"))
