"""Training curves: curves.png from a real run, the `plot` module CLI, and warnings (not errors) for bad metrics."""

import csv
import logging
from pathlib import Path

import pytest
from PIL import Image

from {{ cookiecutter.package_name }} import plot
from {{ cookiecutter.package_name }}.metrics import METRIC_FIELDS
from {{ cookiecutter.package_name }}.plot import main, plot_curves
from {{ cookiecutter.package_name }}.task import CURVE

PACKAGE = "{{ cookiecutter.package_name }}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADER = ",".join(METRIC_FIELDS) + "\n"  # metrics.csv as train.py writes it
ROW = ",".join(["1", *(f"{0.3 + 0.1 * i:g}" for i in range(len(METRIC_FIELDS) - 1))]) + "\n"  # an epoch's numbers
NOT_A_NUMBER = ",".join(["1", "x", *[""] * (len(METRIC_FIELDS) - 2)]) + "\n"


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


def test_the_second_panel_draws_the_tasks_metric_for_train_and_val_within_its_range(run_dir, monkeypatch):
    figures = []

    class Recorded(plot.Figure):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            figures.append(self)

    monkeypatch.setattr(plot, "Figure", Recorded)
    assert plot_curves(run_dir) == run_dir / "curves.png"
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    [figure] = figures
    loss_axes, metric_axes = figure.axes
    name, label, limits = CURVE
    assert metric_axes.get_ylabel() == label and metric_axes.get_title() == f"{label} per epoch"
    low, high = metric_axes.get_ylim()
    for axes, column in ((loss_axes, "loss"), (metric_axes, name)):
        lines = {line.get_label(): line for line in axes.get_lines()}
        for split in ("train", "val"):
            values = [float(row[f"{split}_{column}"]) for row in rows]  # columns of metrics.csv
            assert list(lines[split].get_xdata()) == [1, 2] and list(lines[split].get_ydata()) == values
    values = [float(row[f"{split}_{name}"]) for row in rows for split in ("train", "val")]
    assert low <= min(values) and max(values) <= high  # every point inside the panel
    assert limits is None or (low, high) == limits  # a fixed range where the task has one


def test_module_cli(run_dir, capsys):
    assert main([str(run_dir)]) == 0
    assert f"Curves: {run_dir / 'curves.png'}" in capsys.readouterr().err  # the log line names it
    assert_png(run_dir / "curves.png")


def test_module_cli_without_metrics_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {tmp_path / 'metrics.csv'} does not exist (give a run dir written by train.py)"


@pytest.mark.parametrize(("content", "reason"), [(HEADER, "no epochs yet"), (HEADER + NOT_A_NUMBER, "not a number")])
def test_unusable_metrics_warn_instead_of_raising(tmp_path, caplog, content, reason):
    (tmp_path / "metrics.csv").write_text(content)
    with caplog.at_level(logging.WARNING, logger=PACKAGE):
        assert plot_curves(tmp_path) is None
    assert reason in caplog.text
    assert not (tmp_path / "curves.png").exists()
    assert main([str(tmp_path)]) == 1  # the CLI: nothing drawn, the warning says why


def test_an_unwritable_folder_warns_instead_of_raising(tmp_path, caplog, monkeypatch):
    (tmp_path / "metrics.csv").write_text(HEADER + ROW)

    def read_only(path, write):
        raise PermissionError(f"[Errno 13] Permission denied: '{path}'")

    monkeypatch.setattr(plot, "atomic_write", read_only)
    with caplog.at_level(logging.WARNING, logger=PACKAGE):
        assert plot_curves(tmp_path) is None
    assert "cannot write" in caplog.text and "Permission denied" in caplog.text
