"""Checkpoints: full round trip, atomic writes, safe loading, clear errors, wrapper prefixes."""

import errno
import logging
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from conftest import fast_overrides
from tiny_data import FAST_DATA, MODEL_WIDTH_KEY

import evaluate
from {{ cookiecutter.package_name }}.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model_weights,
    resolve_checkpoint_path,
    save_checkpoint,
    strip_prefixes,
    unwrap_model,
)
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.engine import Trainer, build_optimizer, build_scheduler
from {{ cookiecutter.package_name }}.errors import run_main
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.task import build_criterion
from {{ cookiecutter.package_name }}.utils import atomic_write

OTHER_SHAPE = {MODEL_WIDTH_KEY: [2 * width for width in FAST_DATA[MODEL_WIDTH_KEY]]}  # a model of other widths
SETTINGS = {"optim.name": "sgd", "optim.scheduler": "step"}  # momentum buffers and a scheduler to restore


class NotATensor:
    """A custom class: torch.load(weights_only=True) must refuse to unpickle it."""

    def __init__(self):
        self.value = 42


def make_trainer(cfg, run_dir, build=build_model) -> Trainer:
    """What train.py builds, on the CPU."""
    train_loader, val_loader, info = build_dataloaders(cfg)
    model = build(cfg, info)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    criterion = build_criterion(cfg, info)
    return Trainer(cfg, model, criterion, optimizer, scheduler, train_loader, val_loader, info, run_dir, "cpu")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_root) -> Path:
    """A run trained for one epoch (checkpoints/last.pt and best.pt), shared by the module: read it, never change it."""
    tmp_path = tmp_path_factory.mktemp("checkpoint")
    make_trainer(load_config(overrides=fast_overrides(tmp_path, data_root, **SETTINGS)), tmp_path / "run").fit()
    return tmp_path / "run"


@pytest.fixture
def trained(run_dir, make_config):
    """A fresh trainer holding that run's state (its own to change)."""
    trainer = make_trainer(make_config(**SETTINGS), run_dir)
    trainer.load_state_dict(load_checkpoint(run_dir))
    return trainer


def assert_same_tensors(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_tensors(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_tensors(x, y)
    else:
        assert a == b


def test_round_trip_restores_everything(make_config, tmp_path):
    trained = make_trainer(make_config(**SETTINGS), tmp_path / "run")
    trained.fit()
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    assert path.is_file() and (path.parent / "best.pt").is_file()
    save_checkpoint(trained.state_dict(), tmp_path / "copy.pt")

    torch.manual_seed(1234)  # a fresh trainer with other weights
    other = make_trainer(make_config(**SETTINGS), tmp_path / "run2")
    assert not torch.equal(next(iter(other.model.parameters())), next(iter(trained.model.parameters())))
    other.load_state_dict(load_checkpoint(tmp_path / "copy.pt"))

    assert_same_tensors(other.model.state_dict(), trained.model.state_dict())
    assert_same_tensors(other.optimizer.state_dict(), trained.optimizer.state_dict())
    assert other.scheduler.state_dict() == trained.scheduler.state_dict()
    assert (other.epoch, other.step) == (trained.epoch, trained.step)
    assert (other.best.best, other.best.bad_epochs) == (trained.best.best, trained.best.bad_epochs)
    assert other.history == trained.history and len(other.history) == 1
    assert_same_tensors(other.state_dict(), trained.state_dict())  # and whatever else the engine saves


def test_checkpoint_holds_what_resume_and_evaluate_need(trained, run_dir):
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    for key in ["model", "optimizer", "scheduler", "epoch", "step", "best_metric", "bad_epochs", "history"]:
        assert key in state, key
    assert "config" in state and "data_info" in state
    assert state["epoch"] == 1 and state["step"] > 0
    assert state["config"]["data"]["root"] == trained.cfg.data.root
    assert state["data_info"] == trained.data_info  # what the outputs mean, how inputs are scaled
    best = torch.load(run_dir / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert_same_tensors(best["model"], state["model"])


@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()])
def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, error):
    path = tmp_path / "out" / "last.pt"
    atomic_write(path, lambda file: file.write(b"the old file"))

    def broken_write(file):
        file.write(b"half a file")
        raise error

    with pytest.raises(type(error)):
        atomic_write(path, broken_write)
    assert path.read_bytes() == b"the old file"
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left behind
    with pytest.raises(type(error)):
        atomic_write(tmp_path / "new" / "first.pt", broken_write)
    assert list((tmp_path / "new").iterdir()) == []  # nothing at all, not half a file


def test_save_checkpoint_is_atomic(trained, tmp_path, monkeypatch):
    path = tmp_path / "ckpt" / "last.pt"
    save_checkpoint(trained.state_dict(), path)
    before = path.read_bytes()

    def broken_save(obj, file, *args, **kwargs):
        file.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointError, match="No space left on device.*last.pt from before is intact.*--resume"):
        save_checkpoint(trained.state_dict(), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]
    load_checkpoint(path)


def assert_clean_error(err: pytest.ExceptionInfo, *fragments: str) -> str:
    """The message names what matters, and no chained torch/pickle traceback rides along."""
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert err.value.__cause__ is None
    assert err.value.__context__ is None or err.value.__suppress_context__
    assert "Traceback" not in message
    return message


def test_truncated_file(run_dir, tmp_path):
    data = (run_dir / "checkpoints" / "last.pt").read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert_clean_error(err, str(path), "truncated")


@pytest.mark.parametrize(
    "content",
    [bytes(range(256)) * 8, b"", b"hello world", b"epoch,train_loss\n1,0.5\n"],
    ids=["random-bytes", "empty", "text", "csv-text"],
)
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "bogus.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert_clean_error(err, str(path))


def test_pickled_custom_class_is_refused_by_weights_only(tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"model": {}, "extra": NotATensor()}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert_clean_error(err, str(path), "weights_only")


def test_torch_file_without_a_model_entry(tmp_path):
    for name, obj in [("tensor.pt", torch.zeros(3)), ("dict.pt", {"weights": torch.zeros(3)})]:
        torch.save(obj, tmp_path / name)
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(tmp_path / name)
        assert_clean_error(err, str(tmp_path / name), "model")


def test_checkpoint_of_another_model_names_it(trained, run_dir, make_config, tmp_path):
    state = load_checkpoint(run_dir)
    cfg = make_config(**OTHER_SHAPE)
    model = build_model(cfg, trained.data_info)
    with pytest.raises(CheckpointError) as err:
        load_model_weights(model, state, "last.pt")
    message = assert_clean_error(err, "last.pt", repr(trained.cfg.model.name), "shape")
    assert type(model).__name__ in message
    other = make_trainer(cfg, tmp_path / "run2")
    with pytest.raises(CheckpointError):
        other.load_state_dict(state)


def test_missing_and_unexpected_keys(trained, run_dir):
    state = load_checkpoint(run_dir)
    weights = dict(state["model"])
    name = next(iter(weights))
    weights["extra.weight"] = weights.pop(name)
    with pytest.raises(CheckpointError) as err:
        load_model_weights(trained.model, {**state, "model": weights})
    assert_clean_error(err, name, "extra.weight")


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod.", "_orig_mod.module."])
def test_wrapper_prefixes_are_stripped(trained, run_dir, prefix):
    state = load_checkpoint(run_dir)
    prefixed = {prefix + key: value for key, value in state["model"].items()}
    torch.manual_seed(5)
    model = build_model(trained.cfg, trained.data_info)
    load_model_weights(model, {**state, "model": prefixed})
    assert_same_tensors(model.state_dict(), trained.model.state_dict())


def test_strip_prefixes_only_at_the_front_and_only_where_the_model_lacks_them():
    assert strip_prefixes({"module.features.module.w": 1, "_orig_mod.head.b": 2, "fc.w": 3}) == {
        "features.module.w": 1,
        "head.b": 2,
        "fc.w": 3,
    }
    own = {"module.fc.w": 0, "head.b": 0}  # a model with a `module` attribute of its own
    assert strip_prefixes({"module.fc.w": 1, "_orig_mod.module.fc.w": 2, "module.head.b": 3}, own) == {
        "module.fc.w": 2,
        "head.b": 3,
    }


class Holder(nn.Module):
    """A user's model that keeps its backbone as `self.module`, as torch.nn.parallel's wrappers do."""

    def __init__(self, backbone: nn.Module, outputs: int):
        super().__init__()
        self.module = backbone
        self.head = nn.Linear(outputs, outputs)

    def forward(self, x):
        return self.head(self.module(x))


def test_only_the_wrappers_this_project_adds_are_unwrapped(trained):
    model = build_model(trained.cfg, trained.data_info)
    assert unwrap_model(nn.DataParallel(model)) is model
    assert unwrap_model(torch.compile(nn.DataParallel(model))) is model  # compiled: no code runs until called
    assert unwrap_model(nn.DataParallel(torch.compile(model))) is model
    holder = Holder(model, trained.data_info["num_outputs"])
    assert unwrap_model(holder) is holder
    assert unwrap_model(torch.compile(holder)) is holder
    load_model_weights(nn.DataParallel(model), trained.state_dict())
    assert_same_tensors(model.state_dict(), trained.model.state_dict())


def test_a_model_with_a_module_attribute_is_saved_resumed_and_evaluated_whole(
    make_config, tmp_path, monkeypatch, capsys
):
    def build_holder(cfg, info):
        return Holder(build_model(cfg, info), info["num_outputs"])

    cfg = make_config(**SETTINGS)
    trainer = make_trainer(cfg, tmp_path / "run", build_holder)
    trainer.fit()
    saved = load_checkpoint(tmp_path / "run")
    assert list(saved["model"]) == list(trainer.model.state_dict())  # the head too, with the backbone's prefix
    torch.manual_seed(99)  # other random weights everywhere, the head included
    resumed = make_trainer(cfg, tmp_path / "run", build_holder)
    resumed.load_state_dict(saved)
    assert_same_tensors(resumed.model.state_dict(), trainer.model.state_dict())
    built = []
    monkeypatch.setattr(evaluate, "build_model", lambda cfg, info: built.append(build_holder(cfg, info)) or built[-1])
    assert run_main(evaluate.main, [str(tmp_path / "run")]) == 0, capsys.readouterr().err
    assert_same_tensors(built[0].state_dict(), trainer.model.state_dict())
    assert "using best.pt" in capsys.readouterr().err  # a run dir: evaluate.py takes its best.pt, as predict.py


def test_resolve_checkpoint_path(run_dir, tmp_path):
    assert resolve_checkpoint_path(run_dir) == run_dir / "checkpoints" / "last.pt"
    best = run_dir / "checkpoints" / "best.pt"
    assert resolve_checkpoint_path(best) == best
    for missing in (tmp_path / "nope.pt", tmp_path):
        with pytest.raises(CheckpointError) as err:
            resolve_checkpoint_path(missing)
        assert str(missing) in str(err.value)


def test_a_run_dir_means_best_pt_for_evaluate_and_predict_else_last_pt_and_last_pt_for_resume(tmp_path, caplog):
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "last.pt").write_bytes(b"")
    with caplog.at_level(logging.INFO):
        assert resolve_checkpoint_path(tmp_path / "run", prefer="best.pt") == folder / "last.pt"  # no best.pt yet
        (folder / "best.pt").write_bytes(b"")
        assert resolve_checkpoint_path(tmp_path / "run", prefer="best.pt") == folder / "best.pt"
    assert resolve_checkpoint_path(tmp_path / "run") == folder / "last.pt"  # what --resume continues
    assert [r.getMessage().split(": ")[-1] for r in caplog.records] == ["using last.pt", "using best.pt"]


def test_evaluate_cli_reports_a_bad_checkpoint_in_one_line(run_dir, tmp_path, capsys):
    data = (run_dir / "checkpoints" / "last.pt").read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    assert run_main(evaluate.main, [str(path)]) == 2
    out, err = capsys.readouterr()
    [line] = err.strip().splitlines()
    assert line.startswith(f"error: {path} is truncated")
    assert out == ""  # stdout carries the JSON report only
