"""Shared fixtures: a tiny dataset in this project's format, a fast config builder, a script runner.

Everything a test writes goes under pytest's `tmp_path`; nothing lands in the project folder.
"""

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_data import FAST_DATA, write_tiny_sample

from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint, load_model_weights
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.models import build_model

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_DIR / "configs" / "default.yaml"
PACKAGE = "{{ cookiecutter.package_name }}"
# Workers started by forkserver (the default from Python 3.14, and what some tests ask for) fork from one
# server that imported torch and this package once, instead of importing them afresh in every worker.
torch.multiprocessing.set_forkserver_preload(["torch", f"{PACKAGE}.data"])

# Fast settings: one epoch, no worker processes, no bars, on the CPU (tiny data: tiny_data.py).
FAST = {
    **FAST_DATA,
    "data.num_workers": 0,
    "trainer.epochs": 1,
    "trainer.device": "cpu",
    "trainer.progress_bar": False,
    "trainer.log_interval": 1,
    # test_tracker.py turns the tracker on; elsewhere it would only slow the runs down  # tracker
    "tracker.enabled": False,  # tracker
}


def checkpoint_model(path):
    """(model in eval mode, val loader, config) of a checkpoint, rebuilt through the training pipeline."""
    state = load_checkpoint(path)
    cfg = load_config(base=state["config"])
    _, val_loader, data_info = build_dataloaders(cfg, state["data_info"])
    model = build_model(cfg, data_info)
    load_model_weights(model, state)
    return model.eval(), val_loader, cfg


def as_overrides(settings: dict) -> list[str]:
    """{"trainer.epochs": 1, "model.freeze": ["a*"]} -> ["trainer.epochs=1", "model.freeze=['a*']"] (YAML values)."""
    return [f"{key}={value}" for key, value in settings.items()]


def fast_overrides(tmp_path: Path, data_root: Path, **settings) -> list[str]:
    """Command-line overrides for a fast run with data and outputs under tmp_path."""
    return as_overrides({**FAST, "data.root": data_root, "output_dir": tmp_path / "runs", **settings})


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A tiny dataset shared by the session's tests: read it, never change it."""
    return write_tiny_sample(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="session")
def shared_runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture
def trained_run(shared_runs, cli_overrides) -> Path:
    """A finished two-epoch run (two points per curve), trained once per session: read it, never change it."""
    import train

    run_dir = shared_runs / "run"
    if not run_dir.exists():
        assert train.main(cli_overrides(run_name="run", output_dir=shared_runs, **{"trainer.epochs": 2})) == 0
    return run_dir


@pytest.fixture
def cli_overrides(tmp_path, data_root):
    """cli_overrides(**{"trainer.epochs": 3}) -> ["data.image_size=16", ...]: FAST settings for train.py."""

    def overrides(**settings) -> list[str]:
        return fast_overrides(tmp_path, data_root, **settings)

    return overrides


@pytest.fixture
def make_config(cli_overrides):
    """make_config(**{"trainer.epochs": 3}) -> a Config from configs/default.yaml with FAST settings."""

    def make(**settings):
        return load_config(DEFAULT_CONFIG, cli_overrides(**settings))

    return make


@pytest.fixture
def run_script(tmp_path):
    """Run one of the project's scripts in a subprocess, from tmp_path (so nothing is written in the project)."""

    def run(script: str, *args, timeout: float = 120) -> subprocess.CompletedProcess:
        command = [sys.executable, str(PROJECT_DIR / script), *map(str, args)]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture(autouse=True)
def _reset_package_logger():
    """Code under test may attach console/file handlers to the package logger; detach and close them."""
    yield
    logger = logging.getLogger(PACKAGE)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)
