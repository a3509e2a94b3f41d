"""Training curves: curves.png from a real run, the `plot` module CLI, and life without matplotlib."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import train
from {{ cookiecutter.package_name }}.plot import main, plot_curves

PROJECT_DIR = Path(__file__).resolve().parent.parent
PACKAGE = "{{ cookiecutter.package_name }}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADER = "epoch,train_loss,train_acc,val_loss,val_acc,lr,time_s\n"


@pytest.fixture(scope="module")
def shared_runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture
def run_dir(shared_runs, cli_overrides) -> Path:
    """A finished two-epoch run (two points per curve), trained once per module; each test starts without curves."""
    run_dir = shared_runs / "curvy"
    if not run_dir.exists():
        assert train.main(cli_overrides(run_name="curvy", output_dir=shared_runs, **{"trainer.epochs": 2})) == 0
    (run_dir / "curves.png").unlink(missing_ok=True)
    return run_dir


def assert_png(path) -> None:
    image_module = pytest.importorskip("PIL.Image")  # a matplotlib dependency
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with image_module.open(path) as image:
        image.verify()  # a complete, uncorrupted file
    with image_module.open(path) as image:
        assert image.format == "PNG" and image.size == (1000, 400)  # figsize (10, 4) at 100 dpi


def test_plot_curves_writes_a_png(run_dir):
    pytest.importorskip("matplotlib")
    path = plot_curves(run_dir)
    assert path == run_dir / "curves.png"
    assert_png(path)
    assert not list(run_dir.glob(".*tmp*"))  # no temp file left


def test_module_cli(run_dir, tmp_path):
    pytest.importorskip("matplotlib")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_DIR), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", f"{PACKAGE}.plot", str(run_dir)]
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "curves.png" in proc.stderr  # the log line names it
    assert_png(run_dir / "curves.png")


def test_module_cli_without_metrics_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {tmp_path / 'metrics.csv'} does not exist (give a run dir written by train.py)"


def test_without_matplotlib_one_warning_and_none(tmp_path, monkeypatch, caplog):
    """matplotlib is an optional extra: without it nothing is drawn and nothing raises."""
    (tmp_path / "metrics.csv").write_text(HEADER + "1,1.2,0.4,1.1,0.5,0.003,0.5\n")
    # None in sys.modules makes `import matplotlib` (and its submodules, if already imported) fail.
    for name in [name for name in sys.modules if name.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    with caplog.at_level(logging.WARNING, logger=PACKAGE):
        assert plot_curves(tmp_path) is None
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "matplotlib is not installed" in warnings[0].message
    assert "pip install matplotlib" in warnings[0].message and 'pip install -e ".[plot]"' in warnings[0].message
    assert not (tmp_path / "curves.png").exists()
    assert main([str(tmp_path)]) == 1  # the CLI: nothing drawn, the warning says why


@pytest.mark.parametrize(("content", "reason"), [(HEADER, "no epochs yet"), (HEADER + "1,x,,,,,\n", "not a number")])
def test_unusable_metrics_warn_instead_of_raising(tmp_path, caplog, content, reason):
    pytest.importorskip("matplotlib")
    (tmp_path / "metrics.csv").write_text(content)
    with caplog.at_level(logging.WARNING, logger=PACKAGE):
        assert plot_curves(tmp_path) is None
    assert reason in caplog.text
    assert not (tmp_path / "curves.png").exists()
