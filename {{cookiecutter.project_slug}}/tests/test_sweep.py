"""sweep.py: an Optuna study of tiny trials with pruning, continued by a second command; bad spaces refused.

Needs the `sweep` extra (optuna; in the dev extra of this project).
"""

import csv
import importlib.util
import sys

import pytest
import yaml

import sweep
from {{ cookiecutter.package_name }}.config import load_config, to_dict
from {{ cookiecutter.package_name }}.errors import ConfigError, run_main
from {{ cookiecutter.package_name }}.task import MONITORS

# sweep.py asks for optuna first: without it, only the test of that message runs.
needs_optuna = pytest.mark.skipif(
    importlib.util.find_spec("optuna") is None, reason='needs optuna: pip install -e ".[sweep]"'
)
PRUNE_EARLY = {"startup_trials": 1, "warmup_epochs": 0}  # trial 1 on may be pruned after its first epoch


def write_space(path, space, pruner=PRUNE_EARLY):
    path.write_text(yaml.safe_dump({"trials": 20, "pruner": pruner, "space": space}), encoding="utf-8")
    return path


def read_rows(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


@needs_optuna
def test_a_study_prunes_continues_and_writes_a_best_config(tmp_path, cli_overrides, capsys, monkeypatch):
    import optuna

    monitor = "val_loss"  # every task's, and continuous: a trial that cannot learn is worse, never tied
    space = write_space(tmp_path / "space.yaml", {"optim.lr": {"low": 1e-7, "high": 0.1, "log": True}})
    study_dir = tmp_path / "runs" / "sweeps" / "s"
    real_create_study = optuna.create_study

    def create_study(**kwargs):  # the study sweep.py makes, with the trials chosen here: a learning rate that
        study = real_create_study(**kwargs)  # learns, then two that cannot (pruned at epoch 1: cheap)
        for lr in [0.003, 1e-7, 1e-7] * (not study.trials):
            study.enqueue_trial({"optim.lr": lr})
        return study

    monkeypatch.setattr(optuna, "create_study", create_study)
    args = ["--space", str(space), "--study", "s", *cli_overrides(**{"trainer.monitor": monitor})]  # 1 epoch each

    assert sweep.main(["--trials", "2", *args]) == 0
    assert (study_dir / "trial-1" / "checkpoints" / "last.pt").is_file()  # a pruned trial is a run dir too
    assert (study_dir / "trial-0" / "eval").is_dir() and not (study_dir / "trial-1" / "eval").exists()  # stopped early
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{study_dir / 'study.db'}")
    assert study.direction.name == "MINIMIZE"
    assert [trial.state.name for trial in study.trials] == ["COMPLETE", "PRUNED", "WAITING"]  # 3rd: the next command
    assert study.trials[0].value == float(read_rows(study_dir / "trial-0")[-1][monitor])  # its best (only) epoch
    capsys.readouterr()

    assert sweep.main(["--trials", "3", *args]) == 0  # the same study, continued: one more trial
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["trial", "state", monitor, "epochs"] and len(table) == 4
    assert table[1].startswith("0 *") and "pruned" in table[2] and "pruned" in table[3]
    assert sorted(p.name for p in study_dir.glob("trial-*")) == ["trial-0", "trial-1", "trial-2"]

    best = yaml.safe_load((study_dir / "best.yaml").read_text(encoding="utf-8"))
    assert best["optim"]["lr"] == 0.003 and best["run_name"] == "" and best["output_dir"] == str(tmp_path / "runs")
    trial = yaml.safe_load((study_dir / "trial-0" / "config.yaml").read_text(encoding="utf-8"))
    assert to_dict(load_config(study_dir / "best.yaml")) == trial | {"output_dir": best["output_dir"], "run_name": ""}


@needs_optuna
def test_the_study_follows_the_default_monitor_s_way(tmp_path, cli_overrides):
    import optuna

    monitor = load_config().trainer.monitor  # the task's default: val_acc or val_rmse
    space = write_space(tmp_path / "space.yaml", {"optim.lr": {"low": 1e-3, "high": 1e-2, "log": True}})
    assert sweep.main(["--trials", "1", "--space", str(space), "--study", "d", *cli_overrides()]) == 0
    study_dir = tmp_path / "runs" / "sweeps" / "d"
    study = optuna.load_study(study_name="d", storage=f"sqlite:///{study_dir / 'study.db'}")
    # trainer.monitor's way (task.py's MONITORS): lower is better for a loss or an error, higher for a score
    assert study.direction.name == {"min": "MINIMIZE", "max": "MAXIMIZE"}[MONITORS[monitor]]
    assert study.trials[0].value == float(read_rows(study_dir / "trial-0")[-1][monitor])


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"optim.lrr": {"low": 0.1, "high": 0.2}}, "did you mean 'optim.lr'"),
        ({"optim.lr": {"low": 0.2, "high": 0.1}}, "low 0.2 > high 0.1"),
        ({"optim.name": {"choices": []}}, "non-empty list"),
        ({"optim.name": {"choices": ["adamw", "adam"]}}, "'adam' is not one of"),
        ({"optim.lr": {"low": 0.0, "high": 0.1, "log": True}}, "log range needs low > 0"),
        ({"optim.lr": {"min": 0.1, "max": 0.2}}, "must be a range"),
        ({"trainer.epochs": {"low": 0, "high": 3}}, "must be > 0"),
    ],
)
@needs_optuna
def test_a_bad_space_is_refused_before_any_trial(tmp_path, cli_overrides, space, message):
    path = write_space(tmp_path / "space.yaml", space)
    with pytest.raises(ConfigError, match=message):
        sweep.main(["--space", str(path), *cli_overrides()])
    assert not (tmp_path / "runs").exists()


def test_the_default_space_is_valid(cli_overrides):
    settings = sweep.load_space(sweep.SPACE_FILE, None, cli_overrides())
    assert settings["space"] and settings["trials"] >= 1


@needs_optuna
def test_a_bad_space_is_one_line_from_the_command_line(tmp_path, cli_overrides, capsys):
    path = write_space(tmp_path / "space.yaml", {"optim.lrr": {"low": 0.1, "high": 0.2}})
    assert run_main(sweep.main, ["--space", str(path), *cli_overrides()]) == 2  # as `python sweep.py` runs
    assert capsys.readouterr().err.startswith("error: unknown config key 'optim.lrr'; did you mean 'optim.lr'?")


def test_without_optuna_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if the package were not installed
    assert sweep.main([]) == 2
    assert capsys.readouterr().err.strip() == 'error: sweep.py needs optuna: python -m pip install -e ".[sweep]"'
