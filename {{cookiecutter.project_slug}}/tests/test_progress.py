{% set image = cookiecutter.dataset_type != "tabular_csv" %}
{% set own_images = cookiecutter.dataset_type in ["image_folder", "image_list"] %}
"""Progress bars where a user waits: only on a terminal, and only with trainer.progress_bar on."""

import io
import sys

import pytest
import torch

import predict
from {{ cookiecutter.package_name }}.data import build_dataloaders
{% if own_images %}
from {{ cookiecutter.package_name }}.data.sample import write_sample
{% endif %}
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.trainer import Trainer
from {{ cookiecutter.package_name }}.utils.logs import show_progress


class Terminal(io.StringIO):
    """stderr as a terminal would be: tqdm draws its bars into it."""

    def isatty(self):
        return True


def stderr_as(monkeypatch, terminal: bool) -> io.StringIO:
    stream = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def test_bars_need_a_terminal_and_the_setting(monkeypatch):
    stderr_as(monkeypatch, terminal=False)
    assert not show_progress(True)  # a log file or CI: no bar spam
    stderr_as(monkeypatch, terminal=True)
    assert show_progress(True) and not show_progress(False)


@pytest.mark.parametrize("terminal", [True, False])
def test_training_evaluation_and_prediction_bars(make_config, tmp_path, monkeypatch, terminal):
    stream = stderr_as(monkeypatch, terminal)
    cfg = make_config(**{"trainer.progress_bar": True})
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    train_loader, val_loader, info = build_dataloaders(cfg)
    model = build_model(cfg, info)
    Trainer(cfg, model, train_loader, val_loader, info, run_dir, "cpu").fit()
    batches = [inputs for inputs, _ in val_loader]
    cpu = torch.device("cpu")
    probabilities = predict.predict_probabilities(model, batches, cpu, len(batches), show_progress(True))
    assert probabilities.shape == (len(val_loader.dataset), info["num_classes"])
    text = stream.getvalue()
    for bar in ("epoch 1/1:", "eval:", "predict:"):
        assert (bar in text) == terminal, f"{bar!r} bar {'missing' if terminal else 'shown off a terminal'}: {text!r}"
    if terminal:
        assert "samples_s=" in text  # the training bar shows the speed


def test_progress_bar_setting_turns_bars_off_on_a_terminal(make_config, tmp_path, monkeypatch):
    stream = stderr_as(monkeypatch, terminal=True)
    cfg = make_config(**{"trainer.progress_bar": False})
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    train_loader, val_loader, info = build_dataloaders(cfg)
    Trainer(cfg, build_model(cfg, info), train_loader, val_loader, info, run_dir, "cpu").fit()
    assert "epoch 1/1:" not in stream.getvalue() and "eval:" not in stream.getvalue()
{% if image %}


def test_preloading_shows_bars(make_config, monkeypatch):
    stream = stderr_as(monkeypatch, terminal=True)
    build_dataloaders(make_config(**{"trainer.progress_bar": True, "data.preload": "cpu"}))
    text = stream.getvalue()
    assert "preload train:" in text and "preload val:" in text, text
{% if own_images %}
    assert "computing mean/std:" in text, text  # data.mean/std empty: computed from train images


def test_writing_sample_images_shows_a_bar(tmp_path, monkeypatch):
    stream = stderr_as(monkeypatch, terminal=True)
    write_sample(tmp_path / "sample", train_per_class=2, val_per_class=1)
    assert "writing sample images:" in stream.getvalue()
{% endif %}
{% endif %}
