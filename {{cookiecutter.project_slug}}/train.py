"""Train a model: config -> loaders -> model, criterion, optimizer, scheduler -> Trainer.fit.

Examples:
    python train.py                                   # configs/default.yaml, sample data
    python train.py trainer.epochs=20 data.root=/data/mine
    python train.py --config configs/my.yaml run_name=baseline
    python train.py --resume runs/baseline            # continue where it stopped
    python train.py run_name=job42 --resume auto      # a requeued job: continue runs/job42, or start it
"""

import argparse
import logging
import sys
from pathlib import Path

from {{ cookiecutter.package_name }}.checkpoint import load_run, new_run_dir
from {{ cookiecutter.package_name }}.config import save_config
from {{ cookiecutter.package_name }}.data import build_dataloaders, eval_datasets
from {{ cookiecutter.package_name }}.data.prefetch import with_prefetch  # use_prefetch
from {{ cookiecutter.package_name }}.device import setup_device
from {{ cookiecutter.package_name }}.engine import Trainer, build_optimizer, build_scheduler, prepare_model
from {{ cookiecutter.package_name }}.errors import run_main
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.plot import plot_curves
from {{ cookiecutter.package_name }}.preemption import fit_or_stop
from {{ cookiecutter.package_name }}.report import report_best
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
    cfg, state, ckpt_path = load_run(args.config, args.resume, args.overrides)
    run_dir = ckpt_path.parent.parent if state else new_run_dir(cfg, restart=args.resume == "auto")
    cfg.output_dir = str(run_dir.parent)  # as resolved, for config.yaml
    cfg.run_name = run_dir.name
    device = setup_device(cfg)

    # Build everything before touching the run dir: a bad setting leaves nothing behind.
    train_loader, val_loader, data_info = build_dataloaders(cfg, state["data_info"] if state else None, device)
    eval_sets = eval_datasets(cfg, data_info, val_loader)  # val, and test if there is one: checked before training
    train_loader = with_prefetch(train_loader, cfg, device)  # use_prefetch
    # Seeded here, after the data: the init is the same whether or not data loading drew random numbers.
    seed_everything(derive_seed(cfg.seed, "init"), cfg.trainer.deterministic)
    model = prepare_model(build_model(cfg, data_info).to(device), cfg, device)  # before the optimizer takes its tensors
    criterion = build_criterion(cfg, data_info).to(device)  # task.py: the loss, with its class weights
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    trainer = Trainer(cfg, model, criterion, optimizer, scheduler, train_loader, val_loader, data_info, run_dir, device)
    if state is not None:
        trainer.load_state_dict(state, ckpt_path)

    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=state is not None or args.resume == "auto")
    setup_logging(run_dir / "train.log")
    save_config(cfg, run_dir / "config.yaml")  # on resume: with this session's overrides
    trainer.epoch_callbacks.append(TensorBoardLogger(run_dir / "tensorboard", trainer.eval_model, val_loader))  # tensorboard
    tracker = Tracker(cfg, run_dir, trainer.history)  # tracker
    trainer.epoch_callbacks.append(tracker)  # tracker
    trainer.epoch_callbacks += list(callbacks)  # called after each epoch, e.g. by sweep.py
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
    plot_curves(run_dir)  # curves.png
    # The best epoch's weights on val (and test): report.json and the task's files under eval/.
    report_best(trainer.eval_model, criterion, eval_sets, cfg, run_dir, device)
    tracker.finish()  # config.yaml, curves.png and the reports  # tracker
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
