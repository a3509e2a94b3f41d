"""Weights & Biases: each run's resolved config, its epochs as metrics, its files.

`wandb.init` writes under `<run_dir>/wandb/`. Without an API key (WANDB_API_KEY or `wandb login`)
the run is logged offline, which it says once; upload it later with `wandb sync <run_dir>/wandb/offline-run-*`.
$WANDB_MODE, when set, decides instead (tracker.mode=auto).

The W&B run is named like the run dir. Its id and last logged epoch are kept in
`<run_dir>/wandb_run.json`, so `python train.py --resume RUN_DIR` continues the same W&B run: an
epoch that was checkpointed but not yet logged when the run stopped is logged then, and none twice.
Without the `wandb` package training goes on and says so once.
"""

import json
import logging
import netrc
import os
import secrets
from pathlib import Path
from urllib.parse import urlparse

from .config import to_dict
from .utils import atomic_write_text

log = logging.getLogger(__name__)

ARTIFACTS = ["config.yaml", "curves.png", "eval/*/*"]  # eval/<split>/: the reports of best.pt


def has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None  # where `wandb login` keeps it
    except (OSError, netrc.NetrcParseError):
        return False


class Tracker:
    """An epoch callback (row, train_stats) -> metrics at step = epoch; `finish()` adds the files."""

    def __init__(self, cfg, run_dir, history: list[dict]):
        self.run_dir = Path(run_dir)
        self.run = None
        if not cfg.tracker.enabled:
            return
        try:
            import wandb
        except ImportError:
            log.warning('wandb is not installed; training goes on without it. Get it with: pip install -e ".[wandb]"')
            return
        self.saved = self.run_dir / "wandb_run.json"
        # --resume: the same W&B run; a new run gets a fresh id.
        info = json.loads(self.saved.read_text(encoding="utf-8")) if self.saved.is_file() else {}
        self.id = info.get("id") or secrets.token_hex(4)
        self.logged = info.get("epoch", 0)
        mode = cfg.tracker.mode
        if mode == "auto":
            mode = None if os.environ.get("WANDB_MODE") else "online" if has_api_key() else "offline"
            if mode == "offline":
                log.warning("W&B: no API key (WANDB_API_KEY or `wandb login`), so this run is logged offline")
        self.run = wandb.init(
            project=cfg.tracker.project,
            entity=cfg.tracker.entity or None,
            name=self.run_dir.name,
            id=self.id,
            resume="allow",
            reinit="finish_previous",  # e.g. sweep.py's pruned trial before
            dir=self.run_dir,
            config=to_dict(cfg),
            mode=mode,
        )
        self.remember()
        for row in history:  # epochs checkpointed before the last stop but not logged yet
            if row["epoch"] > self.logged:
                self(row, {})

    def remember(self) -> None:
        atomic_write_text(self.saved, json.dumps({"id": self.id, "epoch": self.logged}))

    def __call__(self, row: dict, train: dict) -> None:
        if self.run is None:
            return
        values = dict(row)
        if "samples_per_s" in train:
            values["train_samples_per_s"] = train["samples_per_s"]
        self.run.log(values, step=row["epoch"])
        self.logged = row["epoch"]
        self.remember()

    def finish(self) -> None:
        """config.yaml, curves.png and the eval reports as the run's files; the run marked finished."""
        if self.run is None:
            return
        for pattern in ARTIFACTS:
            if any(self.run_dir.glob(pattern)):
                # Under <run_name>/ in the run's files: W&B keeps a config.yaml of its own there.
                self.run.save(str(self.run_dir / pattern), base_path=str(self.run_dir.parent), policy="now")
        self.run.finish()
