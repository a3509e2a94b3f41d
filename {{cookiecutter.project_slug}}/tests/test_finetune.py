"""`model.weights` from another run: tensors are loaded by name, a head of another shape is left out, and a head
that fits is kept or started fresh per model.reset_head (a bare state dict's kept with a warning)."""

import logging

import pytest
import torch
from conftest import fast_overrides

from {{ cookiecutter.package_name }}.config import ConfigError, load_config
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.models.layers import head_keys


@pytest.fixture(scope="module")
def info(tmp_path_factory, data_root):
    """The tiny dataset's data_info."""
    cfg = load_config(overrides=fast_overrides(tmp_path_factory.mktemp("finetune"), data_root))
    return build_dataloaders(cfg)[2]


def trained_looking(make_config, info):
    """A model built for `info` whose head is far from a fresh init, as after training on other data."""
    torch.manual_seed(0)
    model = build_model(make_config(), info).eval()
    with torch.no_grad():
        for key in head_keys(model):
            param = model.get_parameter(key)
            param.mul_(8).add_(torch.linspace(-1, 1, param.numel()).view_as(param))
    return model


def save_weights(model, folder, data_info=None):
    """The path of `model`'s weights saved in `folder`: a checkpoint of this project with `data_info`, or (None)
    a bare state dict."""
    path = folder / f"source-{len(list(folder.iterdir()))}.pt"
    state = model.state_dict()
    torch.save(state if data_info is None else {"model": state, "data_info": data_info}, path)
    return path


def fine_tuned(make_config, info, path, seed=1, **settings):
    """The model train.py builds from `model.weights=path`, its random init drawn from `seed`."""
    torch.manual_seed(seed)
    return build_model(make_config(**{"model.weights": str(path), **settings}), info).eval()


def fresh(make_config, info, seed=1):
    torch.manual_seed(seed)
    return build_model(make_config(), info).eval()


def assert_head(model, expected, head=True):
    """`model`'s head (head=True) or everything else (head=False) equals `expected`'s."""
    keys = set(head_keys(model))
    state, other = model.state_dict(), expected.state_dict()
    for key in state:
        if (key in keys) == head:
            torch.testing.assert_close(state[key], other[key], rtol=0, atol=0, msg=key)


def assert_zero_head(model):
    for key in head_keys(model):
        assert not model.get_parameter(key).any(), key


def test_a_bare_state_dict_keeps_a_fitting_head_and_warns(make_config, info, tmp_path, caplog):
    source = trained_looking(make_config, info)
    with caplog.at_level(logging.INFO):
        model = fine_tuned(make_config, info, save_weights(source, tmp_path))
    assert_head(model, source)  # the head and the backbone, from the file
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot be checked against the data's" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        reset = fine_tuned(make_config, info, save_weights(source, tmp_path), **{"model.reset_head": True})
    assert_zero_head(reset)
    assert_head(reset, source, head=False)
    assert "model.reset_head=true" in caplog.text and not any(r.levelno >= logging.WARNING for r in caplog.records)


def test_reset_head_false_keeps_a_fitting_head_without_a_warning(make_config, info, tmp_path, caplog):
    source = trained_looking(make_config, info)
    path = save_weights(source, tmp_path, info)  # a checkpoint trained on these very data
    with caplog.at_level(logging.INFO):
        model = fine_tuned(make_config, info, path, **{"model.reset_head": False})
    assert_head(model, source)
    assert_head(model, source, head=False)
    assert "model.weights=" in caplog.text and not any(r.levelno >= logging.WARNING for r in caplog.records)
    assert_zero_head(fine_tuned(make_config, info, path, **{"model.reset_head": True}))


def test_a_head_of_another_shape_is_left_out_whatever_reset_head(make_config, info, tmp_path):
    torch.manual_seed(0)
    wider = build_model(make_config(), {**info, "num_outputs": info["num_outputs"] + 1})
    torch.save(wider.state_dict(), tmp_path / "wider.pt")
    for reset in (False, "auto"):
        model = fine_tuned(make_config, info, tmp_path / "wider.pt", **{"model.reset_head": reset})
        assert_head(model, fresh(make_config, info))
        assert_head(model, wider, head=False)


@pytest.mark.parametrize(("written", "read"), [("true", "true"), ("false", "false"), ("auto", "auto")])
def test_reset_head_reads_yaml_booleans(written, read, tmp_path, data_root):
    file = tmp_path / "config.yaml"
    file.write_text(f"model:\n  reset_head: {written}\n")  # YAML reads true/false as booleans
    assert load_config(file).model.reset_head == read
    assert load_config(overrides=[f"model.reset_head={written}"]).model.reset_head == read
    with pytest.raises(ConfigError, match=r"'model.reset_head' = 'always' is not one of: auto, true, false"):
        load_config(overrides=["model.reset_head=always"])
