"""Training curves: curves.png from a real run, the `plot` module CLI, and warnings (not errors) for bad metrics."""

import logging
from pathlib import Path

import pytest
from PIL import Image

from {{ cookiecutter.package_name }} import plot
from {{ cookiecutter.package_name }}.metrics import METRIC_FIELDS
from {{ cookiecutter.package_name }}.plot import main, plot_curves

PACKAGE = "{{ cookiecutter.package_name }}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADER = ",".join(METRIC_FIELDS) + "\n"  # metrics.csv as train.py writes it


@pytest.fixture
def run_dir(trained_run) -> Path:
    """The session's two-epoch run (conftest.py); each test starts without curves."""
    (trained_run / "curves.png").unlink(missing_ok=True)
    return trained_run


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()  # a complete, uncorrupted file
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1000, 400)  # figsize (10, 4) at 100 dpi


def test_plot_curves_writes_a_png(run_dir):
    path = plot_curves(run_dir)
    assert path == run_dir / "curves.png"
    assert_png(path)
    assert not list(run_dir.glob(".*tmp*"))  # no temp file left


def test_module_cli(run_dir, capsys):
    assert main([str(run_dir)]) == 0
    assert f"Curves: {run_dir / 'curves.png'}" in capsys.readouterr().err  # the log line names it
    assert_png(run_dir / "curves.png")


def test_module_cli_without_metrics_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {tmp_path / 'metrics.csv'} does not exist (give a run dir written by train.py)"


@pytest.mark.parametrize(("content", "reason"), [(HEADER, "no epochs yet"), (HEADER + "1,x,,,,,,\n", "not a number")])
def test_unusable_metrics_warn_instead_of_raising(tmp_path, caplog, content, reason):
    (tmp_path / "metrics.csv").write_text(content)
    with caplog.at_level(logging.WARNING, logger=PACKAGE):
        assert plot_curves(tmp_path) is None
    assert reason in caplog.text
    assert not (tmp_path / "curves.png").exists()
    assert main([str(tmp_path)]) == 1  # the CLI: nothing drawn, the warning says why


def test_an_unwritable_folder_warns_instead_of_raising(tmp_path, caplog, monkeypatch):
    (tmp_path / "metrics.csv").write_text(HEADER + "1,1.2,0.4,1.1,0.5,0.45,0.003,0.5\n")

    def read_only(path, write):
        raise PermissionError(f"[Errno 13] Permission denied: '{path}'")

    monkeypatch.setattr(plot, "atomic_write", read_only)
    with caplog.at_level(logging.WARNING, logger=PACKAGE):
        assert plot_curves(tmp_path) is None
    assert "cannot write" in caplog.text and "Permission denied" in caplog.text
