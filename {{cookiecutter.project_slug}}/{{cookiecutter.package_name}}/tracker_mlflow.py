"""MLflow: each run's resolved config as params, its epochs as metrics, its files as artifacts.

The store is `sqlite:///<output_dir>/mlflow.db` (no server needed) unless `tracker.uri` or
$MLFLOW_TRACKING_URI names another one, such as a team's tracking server. Browse it with

    mlflow ui --backend-store-uri sqlite:///runs/mlflow.db

The MLflow run is named like the run dir. Its id is kept in `<run_dir>/mlflow_run.json`, so
`python train.py --resume RUN_DIR` continues the same MLflow run: an epoch that was checkpointed
but not yet logged when the run stopped is logged then, and none is logged twice.
Without the `mlflow` package training goes on and says so once.
"""

import json
import logging
import os
import time
from pathlib import Path

from .config import to_dict
from .utils import atomic_write_text

log = logging.getLogger(__name__)

ARTIFACTS = ["config.yaml", "curves.png", "eval"]  # eval/<split>/: the reports of best.pt
MAX_PARAMS = 100  # per log_batch call


def flatten(values: dict, prefix: str = "") -> dict:
    """{"optim": {"lr": 0.1}} -> {"optim.lr": 0.1}."""
    flat = {}
    for key, value in values.items():
        flat |= flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return flat


def tracking_uri(cfg) -> str:
    uri = cfg.tracker.uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    return uri or f"sqlite:///{Path(cfg.output_dir).resolve() / 'mlflow.db'}"


class Tracker:
    """An epoch callback (row, train_stats) -> metrics at step = epoch; `finish()` adds the artifacts."""

    def __init__(self, cfg, run_dir, history: list[dict]):
        self.run_dir = Path(run_dir)
        self.client = None
        if not cfg.tracker.enabled:
            return
        try:
            from mlflow import MlflowClient
            from mlflow.entities import Metric, Param
        except ImportError:
            log.warning('mlflow is not installed; training goes on without it. Get it with: pip install -e ".[mlflow]"')
            return
        self.Metric = Metric
        self.Param = Param
        saved = self.run_dir / "mlflow_run.json"
        if saved.is_file():  # --resume: the same MLflow run, in the store it was started in
            info = json.loads(saved.read_text(encoding="utf-8"))
            self.client = MlflowClient(info["uri"])
            self.run_id = info["run_id"]
            logged = {metric.step for metric in self.client.get_metric_history(self.run_id, "val_loss")}
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            uri = tracking_uri(cfg)
            self.client = MlflowClient(uri)
            logged = set()
            experiment = self.client.get_experiment_by_name(cfg.tracker.experiment)
            if experiment is None:
                # A server keeps the artifacts itself; a local store: beside it, under <output_dir>/mlartifacts.
                local = uri.startswith(("sqlite:", "file:", "/"))
                location = (Path(cfg.output_dir) / "mlartifacts").resolve().as_uri() if local else None
                experiment_id = self.client.create_experiment(cfg.tracker.experiment, artifact_location=location)
            else:
                experiment_id = experiment.experiment_id
            self.run_id = self.client.create_run(experiment_id, run_name=self.run_dir.name).info.run_id
            atomic_write_text(saved, json.dumps({"uri": uri, "run_id": self.run_id}))
        self.log_params(flatten(to_dict(cfg)))
        for row in history:  # epochs checkpointed before the last stop but not logged yet
            if row["epoch"] not in logged:
                self(row, {})
        log.info("MLflow run %s (%s) in %s", self.run_dir.name, self.run_id, self.client.tracking_uri)

    def log_params(self, params: dict) -> None:
        """The resolved config; on resume only keys not logged yet (MLflow params cannot change)."""
        known = self.client.get_run(self.run_id).data.params
        new = [self.Param(key, str(value)) for key, value in params.items() if key not in known]
        for start in range(0, len(new), MAX_PARAMS):
            self.client.log_batch(self.run_id, params=new[start : start + MAX_PARAMS])

    def __call__(self, row: dict, train: dict) -> None:
        if self.client is None:
            return
        values = {key: value for key, value in row.items() if key != "epoch"}
        if "samples_per_s" in train:
            values["train_samples_per_s"] = train["samples_per_s"]
        now = int(time.time() * 1000)
        metrics = [self.Metric(key, float(value), now, row["epoch"]) for key, value in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self) -> None:
        """config.yaml, curves.png and the eval reports as artifacts; the run marked finished."""
        if self.client is None:
            return
        for name in ARTIFACTS:
            path = self.run_dir / name
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path=name)
            elif path.is_file():
                self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id)
