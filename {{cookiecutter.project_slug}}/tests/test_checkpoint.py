"""Checkpoints: full round trip, atomic writes, safe loading, clear errors, wrapper prefixes."""

import random

import pytest
import torch
import torch.nn as nn

from {{ cookiecutter.package_name }} import checkpoint as checkpoint_module
from {{ cookiecutter.package_name }}.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model_weights,
    resolve_checkpoint_path,
    save_checkpoint,
    strip_prefixes,
    unwrap_model,
)
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.trainer import Trainer
{% if cookiecutter.dataset_type != "tabular_csv" %}

OTHER_SHAPE = {"model.channels": [4, 16]}  # FAST uses [4, 8]
{% else %}

OTHER_SHAPE = {"model.hidden_sizes": [16, 32]}  # FAST uses [16, 16]
{% endif %}


class NotATensor:
    """A custom class: torch.load(weights_only=True) must refuse to unpickle it."""

    def __init__(self):
        self.value = 42


def make_trainer(cfg, run_dir) -> Trainer:
    (run_dir / "checkpoints").mkdir(parents=True)  # as train.py does
    train_loader, val_loader, info = build_dataloaders(cfg)
    model = build_model(cfg, info)
    return Trainer(cfg, model, train_loader, val_loader, info, run_dir, "cpu")


@pytest.fixture
def trained(make_config, tmp_path):
    """A trainer after one epoch, with its run dir holding checkpoints/last.pt and best.pt."""
    trainer = make_trainer(make_config(**{"optim.name": "sgd", "optim.scheduler": "step"}), tmp_path / "run")
    trainer.fit()
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


def test_round_trip_restores_everything(trained, make_config, tmp_path):
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    assert path.is_file() and (path.parent / "best.pt").is_file()
    state = trained.state_dict()
    save_checkpoint(state, tmp_path / "copy.pt")
    expected_draws = (torch.rand(5), random.random())  # what the RNGs give right after the snapshot

    torch.manual_seed(1234)  # a fresh trainer with other weights and scrambled RNGs
    random.seed(1234)
    other = make_trainer(make_config(**{"optim.name": "sgd", "optim.scheduler": "step"}), tmp_path / "run2")
    assert not torch.equal(next(iter(other.model.parameters())), next(iter(trained.model.parameters())))
    other.load_state_dict(load_checkpoint(tmp_path / "copy.pt"))

    assert_same_tensors(other.model.state_dict(), trained.model.state_dict())
    assert_same_tensors(other.optimizer.state_dict(), trained.optimizer.state_dict())
    assert other.scheduler.state_dict() == trained.scheduler.state_dict()
    assert (other.epoch, other.step, other.best_metric) == (trained.epoch, trained.step, trained.best_metric)
    assert other.bad_epochs == trained.bad_epochs
    assert other.history == trained.history and len(other.history) == 1
    assert_same_tensors((torch.rand(5), random.random()), expected_draws)


def test_numpy_rng_is_restored(trained, tmp_path):
    np = pytest.importorskip("numpy")
    save_checkpoint(trained.state_dict(), tmp_path / "copy.pt")
    expected = np.random.rand(4)
    np.random.seed(99)
    trained.load_state_dict(load_checkpoint(tmp_path / "copy.pt"))
    assert np.array_equal(np.random.rand(4), expected)


def test_checkpoint_holds_what_resume_and_evaluate_need(trained, tmp_path):
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    for key in ["model", "optimizer", "scheduler", "epoch", "step", "best_metric", "rng", "config", "data_info"]:
        assert key in state, key
    assert state["epoch"] == 1 and state["step"] > 0
    assert state["config"]["data"]["root"] == trained.cfg.data.root
    assert state["data_info"]["classes"] == trained.data_info["classes"]
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert_same_tensors(best["model"], state["model"])


def test_atomic_write_keeps_the_old_file_on_failure(trained, tmp_path, monkeypatch):
    path = tmp_path / "ckpt" / "last.pt"
    save_checkpoint(trained.state_dict(), path)
    before = path.read_bytes()

    def broken_save(obj, file, *args, **kwargs):
        file.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(trained.state_dict(), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left behind
    load_checkpoint(path)


def test_atomic_write_survives_an_interrupt_while_saving(trained, tmp_path, monkeypatch):
    path = tmp_path / "ckpt" / "last.pt"

    def interrupted_save(obj, file, *args, **kwargs):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(trained.state_dict(), path)
    assert not path.exists()
    assert list(path.parent.iterdir()) == []


def assert_clean_error(err: pytest.ExceptionInfo, *fragments: str) -> str:
    """The message names what matters, and no chained torch/pickle traceback rides along."""
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert err.value.__cause__ is None
    assert err.value.__context__ is None or err.value.__suppress_context__
    assert "Traceback" not in message
    return message


def test_truncated_file(trained, tmp_path):
    data = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()
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


def test_checkpoint_of_another_model_names_it(trained, make_config, tmp_path):
    state = load_checkpoint(tmp_path / "run")
    cfg = make_config(**OTHER_SHAPE)
    model = build_model(cfg, trained.data_info)
    with pytest.raises(CheckpointError) as err:
        load_model_weights(model, state, "last.pt")
    message = assert_clean_error(err, "last.pt", repr(trained.cfg.model.name), "shape")
    assert type(model).__name__ in message
    other = make_trainer(cfg, tmp_path / "run2")
    with pytest.raises(CheckpointError):
        other.load_state_dict(state)


def test_missing_and_unexpected_keys(trained, tmp_path):
    state = load_checkpoint(tmp_path / "run")
    weights = dict(state["model"])
    name = next(iter(weights))
    weights["extra.weight"] = weights.pop(name)
    with pytest.raises(CheckpointError) as err:
        load_model_weights(trained.model, {**state, "model": weights})
    assert_clean_error(err, name, "extra.weight")


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod.", "_orig_mod.module."])
def test_wrapper_prefixes_are_stripped(trained, make_config, tmp_path, prefix):
    state = load_checkpoint(tmp_path / "run")
    prefixed = {prefix + key: value for key, value in state["model"].items()}
    torch.manual_seed(5)
    model = build_model(trained.cfg, trained.data_info)
    load_model_weights(model, {**state, "model": prefixed})
    assert_same_tensors(model.state_dict(), trained.model.state_dict())


def test_strip_prefixes_only_at_the_front():
    assert strip_prefixes({"module.features.module.w": 1, "_orig_mod.head.b": 2, "fc.w": 3}) == {
        "features.module.w": 1,
        "head.b": 2,
        "fc.w": 3,
    }


def test_wrapped_models_save_and_load_bare_weights(trained, tmp_path):
    class Wrapper(nn.Module):  # stands in for DataParallel/DDP (.module) and torch.compile (._orig_mod)
        def __init__(self, inner, attribute):
            super().__init__()
            setattr(self, attribute, inner)

    for attribute in ("module", "_orig_mod"):
        model = build_model(trained.cfg, trained.data_info)
        wrapped = Wrapper(model, attribute)
        assert unwrap_model(Wrapper(wrapped, "module")) is model
        load_model_weights(wrapped, trained.state_dict())
        assert_same_tensors(model.state_dict(), trained.model.state_dict())
    trained.model = Wrapper(trained.model, "module")
    assert list(trained.state_dict()["model"]) == list(trained.model.module.state_dict())


def test_resolve_checkpoint_path(trained, tmp_path):
    run_dir = tmp_path / "run"
    assert resolve_checkpoint_path(run_dir) == run_dir / "checkpoints" / "last.pt"
    best = run_dir / "checkpoints" / "best.pt"
    assert resolve_checkpoint_path(best) == best
    for missing in (tmp_path / "nope.pt", tmp_path):
        with pytest.raises(CheckpointError) as err:
            resolve_checkpoint_path(missing)
        assert str(missing) in str(err.value)


def test_evaluate_cli_reports_a_bad_checkpoint_without_traceback(trained, tmp_path, run_script):
    data = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    proc = run_script("evaluate.py", path)
    assert proc.returncode != 0
    assert str(path) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
