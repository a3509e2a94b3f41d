"""Hyperparameter search: an Optuna study over the search space of configs/sweep.yaml.

Examples:
    python sweep.py                                   # configs/sweep.yaml: its space and number of trials
    python sweep.py --trials 40 --study lr trainer.epochs=10
    python train.py --config runs/sweeps/lr/best.yaml # train the best trial's config again

Each trial is an ordinary run of train.py, in <output_dir>/sweeps/<study>/trial-<n>/ (config, metrics,
checkpoints). A median pruner stops a trial whose monitored metric (trainer.monitor) is worse than the
median of earlier trials at the same epoch. The study is kept in <output_dir>/sweeps/<study>/study.db
(SQLite; --storage URL for a database server): run the same command again to continue it, or run it in
several shells at once to share it.
At the end: a table of the trials, and best.yaml, the best trial's config.
"""

import argparse
import csv
import json
import logging
import os
import sys
from pathlib import Path

import yaml

import train
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.errors import ConfigError, run_main
from {{ cookiecutter.package_name }}.task import MONITORS
from {{ cookiecutter.package_name }}.utils import atomic_write_text, setup_logging

log = logging.getLogger("{{ cookiecutter.package_name }}.sweep")

SPACE_FILE = Path(__file__).resolve().parent / "configs" / "sweep.yaml"
RANGE_FIELDS = {"low", "high", "log"}
CHOICE_FIELDS = {"choices"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, help="stop when the study has this many finished trials")
    parser.add_argument("--study", default="sweep", help="study name: <output_dir>/sweeps/<study>/ (default: sweep)")
    parser.add_argument("--space", type=Path, default=SPACE_FILE, help="search space (default: configs/sweep.yaml)")
    parser.add_argument("--config", type=Path, help="the base config of every trial (default: configs/default.yaml)")
    storage_help = "a database URL the workers share (default: sqlite:///<output_dir>/sweeps/<study>/study.db)"
    parser.add_argument("--storage", help=storage_help)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every trial")
    return parser.parse_intermixed_args(argv)


def load_space(path: Path, config_path, overrides) -> dict:
    """configs/sweep.yaml, checked: every key exists, each range or list of choices is valid for it."""
    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"search space {path}: cannot read it ({err})") from None
    space = settings.get("space") if isinstance(settings, dict) else None
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"search space {path}: `space:` must map config keys to a range or choices")
    base = load_config(config_path, overrides)
    for key, spec in space.items():
        where = f"search space {path}: {key}"
        fields = set(spec) if isinstance(spec, dict) else set()
        if not ({"low", "high"} <= fields <= RANGE_FIELDS or fields == CHOICE_FIELDS):
            raise ConfigError(f"{where} must be a range (low: A, high: B, optionally log: true) or choices: [...]")
        if "choices" in spec and (not isinstance(spec["choices"], list) or not spec["choices"]):
            raise ConfigError(f"{where}: choices must be a non-empty list")
        ends = [spec[end] for end in ("low", "high") if end in spec]
        if any(isinstance(end, bool) or not isinstance(end, (int, float)) for end in ends):
            raise ConfigError(f"{where}: low and high must be numbers, got {ends}")
        if ends and ends[0] > ends[1]:
            raise ConfigError(f"{where}: low {ends[0]!r} > high {ends[1]!r}")
        if spec.get("log") and not ends[0] > 0:
            raise ConfigError(f"{where}: a log range needs low > 0")
        for value in spec.get("choices", ends):
            load_config(config_path, [*overrides, f"{key}={json.dumps(value)}"])  # unknown key, type, range
        spec["int"] = isinstance(_get(base, key), int) and "choices" not in spec
    return settings


def _get(cfg, key: str):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def suggest(trial, key: str, spec: dict):
    if "choices" in spec:
        return trial.suggest_categorical(key, spec["choices"])
    if spec["int"]:
        return trial.suggest_int(key, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
    return trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))


class Pruning:
    """An epoch callback: report the monitored metric to Optuna, stop the trial when the pruner says so."""

    def __init__(self, trial, monitor: str):
        self.trial = trial
        self.monitor = monitor

    def __call__(self, row: dict, train_stats: dict) -> None:
        import optuna

        self.trial.report(row[self.monitor], row["epoch"])
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.monitor} {row[self.monitor]:.4f} at epoch {row['epoch']}")


def best_of_run(run_dir: Path, monitor: str) -> float:
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as file:
        values = [float(row[monitor]) for row in csv.DictReader(file)]
    return min(values) if MONITORS[monitor] == "min" else max(values)


def objective(args, space: dict, study_dir: Path, monitor: str):
    def run_trial(trial) -> float:
        values = {key: suggest(trial, key, spec) for key, spec in space.items()}
        run_dir = study_dir / f"trial-{trial.number}"
        trial.set_user_attr("run_dir", str(run_dir))
        argv = ["--config", str(args.config)] if args.config else []
        argv += [*args.overrides, *(f"{key}={json.dumps(value)}" for key, value in values.items())]
        argv += [f"output_dir={study_dir}", f"run_name={run_dir.name}"]
        code = train.main(argv, callbacks=[Pruning(trial, monitor)])
        if code == 130:
            raise KeyboardInterrupt
        if code != 0:
            raise ConfigError(f"trial {trial.number} stopped (exit code {code}); see {run_dir / 'train.log'}")
        return best_of_run(run_dir, monitor)

    return run_trial


def print_table(study, monitor: str, best) -> None:
    """One line per trial: number (* the best), state, its value (a pruned one's last), epochs, params."""
    keys = sorted({key for trial in study.trials for key in trial.params})
    lines = [["trial", "state", monitor, "epochs", *keys]]
    for trial in study.trials:
        value = trial.value if trial.value is not None else trial.intermediate_values.get(trial.last_step)
        cells = [f"{trial.number}{' *' if trial.number == best else ''}", trial.state.name.lower()]
        cells += ["" if value is None else f"{value:.4f}", str(len(trial.intermediate_values))]
        params = [trial.params.get(key, "") for key in keys]
        lines.append(cells + [f"{param:.4g}" if isinstance(param, float) else str(param) for param in params])
    widths = [max(map(len, column)) for column in zip(*lines, strict=True)]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def write_best(study, study_dir: Path, output_dir: str) -> Path:
    """The best trial's config.yaml, as a config for a new run: python train.py --config best.yaml."""
    trial = study.best_trial
    config = yaml.safe_load((Path(trial.user_attrs["run_dir"]) / "config.yaml").read_text(encoding="utf-8"))
    config["output_dir"] = output_dir
    config["run_name"] = ""
    header = f"# study {study.study_name}, trial {trial.number} ({trial.value:.6g}): {json.dumps(trial.params)}\n"
    path = study_dir / "best.yaml"
    atomic_write_text(path, header + yaml.safe_dump(config, sort_keys=False))
    return path


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    try:
        import optuna
    except ImportError:
        print('error: sweep.py needs optuna: python -m pip install -e ".[sweep]"', file=sys.stderr)
        return 2
    if "LOCAL_RANK" in os.environ:
        raise ConfigError("sweep.py runs its trials one after another in one process: start it with python")
    settings = load_space(args.space, args.config, args.overrides)  # a bad space stops here, before any trial
    cfg = load_config(args.config, args.overrides)
    trials = args.trials if args.trials is not None else settings.get("trials", 20)
    if trials < 1 or not args.study or "/" in args.study:
        raise ConfigError(f"--trials {trials} --study {args.study!r}: need at least 1 trial and a plain name")
    study_dir = Path(cfg.output_dir) / "sweeps" / args.study
    study_dir.mkdir(parents=True, exist_ok=True)
    pruner = settings.get("pruner") or {}
    storage = optuna.storages.RDBStorage(args.storage or f"sqlite:///{study_dir.resolve() / 'study.db'}")
    study = optuna.create_study(
        storage=storage,
        study_name=args.study,
        direction="minimize" if MONITORS[cfg.trainer.monitor] == "min" else "maximize",
        pruner=optuna.pruners.MedianPruner(pruner.get("startup_trials", 3), pruner.get("warmup_epochs", 1) + 1),
        load_if_exists=True,  # the same command again continues the study
    )
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(states=finished))
    log.info("Study %s in %s: %d of %d trials finished", args.study, study_dir, done, trials)
    if done < trials:
        stop_at = optuna.study.MaxTrialsCallback(trials, states=finished)  # also counts other workers' trials
        run_trial = objective(args, settings["space"], study_dir, cfg.trainer.monitor)
        study.optimize(run_trial, trials - done, callbacks=[stop_at])
    setup_logging()  # the trials' train.log handlers are closed
    completed = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    print_table(study, cfg.trainer.monitor, study.best_trial.number if completed else None)
    if not completed:
        log.warning("No trial completed, so there is no best.yaml yet.")
        return 1
    log.info("Best: trial %d; its config: %s", study.best_trial.number, write_best(study, study_dir, cfg.output_dir))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
