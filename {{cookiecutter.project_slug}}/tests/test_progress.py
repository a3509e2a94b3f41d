"""Progress bars where a user waits: only on a terminal, and only with trainer.progress_bar on."""

import io
import logging
import sys

import pytest
import torch
from test_train import make_trainer

import predict
from {{ cookiecutter.package_name }}.utils import show_progress


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
    trainer = make_trainer(make_config(**{"trainer.progress_bar": True}), tmp_path)
    trainer.fit()
    batches = [inputs for inputs, _ in trainer.val_loader]
    cpu = torch.device("cpu")
    outputs = predict.predict_outputs(trainer.eval_model, batches, cpu, len(batches), show_progress(True))
    assert outputs.shape == (len(trainer.val_loader.dataset), trainer.data_info["num_outputs"])
    text = stream.getvalue()
    for bar in ("epoch 1/1:", "eval:", "predict:"):
        assert (bar in text) == terminal, f"{bar!r} bar {'missing' if terminal else 'shown off a terminal'}: {text!r}"
    if terminal:
        assert "samples_s=" in text  # the training bar shows the speed


def test_progress_bar_setting_turns_bars_off_on_a_terminal(make_config, tmp_path, monkeypatch):
    stream = stderr_as(monkeypatch, terminal=True)
    make_trainer(make_config(**{"trainer.progress_bar": False}), tmp_path).fit()
    assert "epoch 1/1:" not in stream.getvalue() and "eval:" not in stream.getvalue()


@pytest.mark.parametrize(("bar", "level"), [(True, logging.DEBUG), (False, logging.INFO)])
def test_step_readouts_go_to_the_console_only_without_a_bar(make_config, tmp_path, monkeypatch, caplog, bar, level):
    """With a bar the speed is on the bar; the readout still reaches train.log (DEBUG)."""
    stderr_as(monkeypatch, terminal=True)
    trainer = make_trainer(make_config(**{"trainer.progress_bar": bar}), tmp_path)
    with caplog.at_level(logging.DEBUG):
        trainer.fit()
    readouts = [record for record in caplog.records if record.getMessage().startswith("epoch 1 step ")]
    assert len(readouts) == trainer.step  # trainer.log_interval=1 in the fast settings
    assert {record.levelno for record in readouts} == {level}
