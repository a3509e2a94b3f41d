"""MLflow, offline on SQLite: the logged metrics equal metrics.csv, also across a stop and --resume.

Needs the `mlflow` extra (in the dev extra of this project).
"""

import csv
import json
import sys

import pytest
import yaml

import train
from {{ cookiecutter.package_name }}.tracker import Tracker, flatten, tracking_uri

TRACKER = {"tracker.enabled": True}


@pytest.fixture(autouse=True)
def local_store(monkeypatch):
    """Never a tracking server of the environment: each test's own SQLite file."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def read_metrics(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_metrics_equal_metrics_csv_after_a_stop_and_resume(tmp_path, cli_overrides, monkeypatch):
    MlflowClient = pytest.importorskip("mlflow", reason='needs mlflow: pip install -e ".[mlflow]"').MlflowClient

    # Stop the run as a kill would, right after epoch 2's checkpoint and before the tracker logged it.
    log_epoch = Tracker.__call__

    def stop_at_epoch_2(self, row, train_stats):
        if row["epoch"] == 2:
            raise KeyboardInterrupt
        log_epoch(self, row, train_stats)

    monkeypatch.setattr(Tracker, "__call__", stop_at_epoch_2)
    assert train.main(cli_overrides(run_name="ml", **TRACKER, **{"trainer.epochs": 3})) == 130
    monkeypatch.undo()
    run_dir = tmp_path / "runs" / "ml"
    run_id = json.loads((run_dir / "mlflow_run.json").read_text(encoding="utf-8"))["run_id"]
    assert train.main(["--resume", str(run_dir), "tracker.enabled=true"]) == 0

    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")  # the default store
    (experiment,) = [e for e in client.search_experiments() if e.name != "Default"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == run_id and run.info.run_name == "ml" and run.info.status == "FINISHED"
    rows = read_metrics(run_dir)
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    for column in rows[0]:
        if column == "epoch":
            continue
        logged = [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, column), key=lambda m: m.step)]
        # Epoch 2 was logged by the resumed run, once; no epoch twice, none missing.
        assert [step for step, _ in logged] == [1, 2, 3], column
        assert [value for _, value in logged] == pytest.approx([float(row[column]) for row in rows]), column
    speeds = client.get_metric_history(run_id, "train_samples_per_s")
    assert sorted(m.step for m in speeds) == [1, 3] and all(m.value > 0 for m in speeds)  # epoch 2: not known
    config = flatten(yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")))
    assert run.data.params["optim.lr"] == str(config["optim.lr"]) and len(run.data.params) == len(config)
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "curves.png", "eval"} <= artifacts
    assert "eval/val/report.json" in {a.path for a in client.list_artifacts(run_id, "eval/val")}


def test_tracking_uri_default_setting_and_environment(make_config, tmp_path, monkeypatch):
    cfg = make_config()
    assert tracking_uri(cfg) == f"sqlite:///{tmp_path.resolve() / 'runs' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")  # a team's server
    assert tracking_uri(cfg) == "http://mlflow.example:5000"
    assert tracking_uri(make_config(**{"tracker.uri": "sqlite:///elsewhere.db"})) == "sqlite:///elsewhere.db"


def test_missing_mlflow_is_one_warning_and_training_goes_on(tmp_path, cli_overrides, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the package were not installed
    assert train.main(cli_overrides(run_name="no_ml", **TRACKER, **{"trainer.epochs": 2})) == 0
    run_dir = tmp_path / "runs" / "no_ml"
    warnings = [line for line in (run_dir / "train.log").read_text().splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and 'pip install -e ".[mlflow]"' in warnings[0]
    assert (run_dir / "checkpoints" / "last.pt").is_file() and not (run_dir / "mlflow_run.json").exists()


def test_tracker_disabled_touches_nothing(tmp_path, cli_overrides):
    assert train.main(cli_overrides(run_name="off", **{"tracker.enabled": False})) == 0
    assert not (tmp_path / "runs" / "mlflow.db").exists()
    assert not (tmp_path / "runs" / "off" / "mlflow_run.json").exists()
