"""`model.weights` from another run: its classifier head is kept, remapped or started fresh by the class names."""

import logging
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import fast_overrides

from {{ cookiecutter.package_name }}.config import ConfigError, load_config
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.models.layers import head_keys


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, data_root):
    """(data_info, inputs, targets): the tiny dataset's info and a batch of it, every class."""
    cfg = load_config(overrides=fast_overrides(tmp_path_factory.mktemp("finetune"), data_root))
    _, val_loader, info = build_dataloaders(cfg)
    inputs, _ = next(iter(val_loader))
    return info, inputs, torch.arange(inputs.shape[0]) % info["num_classes"]


@pytest.fixture
def source(make_config, tiny, tmp_path):
    """save(classes, bare=False) -> the path of a trained-looking model's weights: a checkpoint of this project
    trained on `classes` (or a bare state dict); `source.model` is that model."""
    info = tiny[0]
    torch.manual_seed(0)
    model = build_model(make_config(), info).eval()
    with torch.no_grad():  # a head far from a fresh init, as after training on other classes
        for key in head_keys(model):
            param = model.get_parameter(key)
            param.mul_(8).add_(torch.linspace(-1, 1, param.numel()).view_as(param))

    def save(classes, bare=False):
        path = tmp_path / f"source-{len(list(tmp_path.iterdir()))}.pt"
        state = model.state_dict()
        torch.save(state if bare else {"model": state, "data_info": {"classes": list(classes)}}, path)
        return path

    save.model = model
    return save


def fine_tuned(make_config, info, path, seed=1, **settings):
    """The model train.py builds from `model.weights=path`, its random init drawn from `seed`."""
    torch.manual_seed(seed)
    return build_model(make_config(**{"model.weights": str(path), **settings}), info).eval()


def fresh(make_config, info, seed=1):
    torch.manual_seed(seed)
    return build_model(make_config(), info).eval()


def assert_head(model, expected, head=True):
    """`model`'s classifier head (head=True) or everything else (head=False) equals `expected`'s."""
    keys = set(head_keys(model))
    state, other = model.state_dict(), expected.state_dict()
    for key in state:
        if (key in keys) == head:
            torch.testing.assert_close(state[key], other[key], rtol=0, atol=0, msg=key)


def assert_zero_head(model):
    for key in head_keys(model):
        assert not model.get_parameter(key).any(), key


def test_other_classes_start_from_a_fresh_head(make_config, tiny, source, caplog):
    info, inputs, targets = tiny
    classes = info["classes"]
    others = [f"other{i}" for i in range(len(classes))]  # as many classes, other names: the shapes fit
    with caplog.at_level(logging.INFO):
        model = fine_tuned(make_config, info, source(others))
    assert_zero_head(model)
    assert_head(model, source.model, head=False)  # the backbone from the file
    assert "differ from the data's" in caplog.text and "replaced by a fresh one at zero" in caplog.text
    with torch.no_grad():  # the first loss is a fresh head's ln(classes), not the old head's confident mistakes
        loss = F.cross_entropy(model(inputs), targets).item()
        assert loss == pytest.approx(math.log(len(classes)))
        kept = fine_tuned(make_config, info, source(others), **{"model.reset_head": False})
        assert F.cross_entropy(kept(inputs), targets).item() > loss + 0.5
    assert_head(kept, source.model)  # model.reset_head=false: the old behaviour, on request


def test_a_head_for_another_number_of_classes_starts_at_zero_too(make_config, tiny, source):
    info = tiny[0]
    path = source([f"other{i}" for i in range(len(info["classes"]) + 1)])
    state = torch.load(path, weights_only=True)
    for key in head_keys(source.model):  # one class more: a head of another shape
        state["model"][key] = torch.cat([state["model"][key], state["model"][key][:1]])
    torch.save(state, path)
    model = fine_tuned(make_config, info, path)
    assert_zero_head(model)  # as for other classes of the same count, not the random init
    assert_head(model, source.model, head=False)


def test_the_same_classes_in_another_order_are_remapped(make_config, tiny, source, caplog):
    info, inputs, _ = tiny
    classes = list(info["classes"])
    shifted = classes[1:] + classes[:1]  # class i of the file is the data's class i + 1
    with caplog.at_level(logging.INFO):
        model = fine_tuned(make_config, info, source(shifted))
    assert "remapped to the data's order" in caplog.text
    with torch.no_grad():
        ours, theirs = model(inputs), source.model(inputs)
    for i, name in enumerate(classes):  # each class name gets the file's logit of that name
        torch.testing.assert_close(ours[:, i], theirs[:, shifted.index(name)])
    assert_head(fine_tuned(make_config, info, source(classes)), source.model)  # the same order: kept as it is


def test_a_bare_state_dict_keeps_a_fitting_head_and_warns(make_config, tiny, source, caplog):
    info = tiny[0]
    with caplog.at_level(logging.INFO):
        model = fine_tuned(make_config, info, source(None, bare=True))
    assert_head(model, source.model)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "its classes cannot be checked against the data's" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        reset = fine_tuned(make_config, info, source(None, bare=True), **{"model.reset_head": True})
    assert_zero_head(reset)
    assert "model.reset_head=true" in caplog.text and not any(r.levelno >= logging.WARNING for r in caplog.records)


def test_a_head_of_another_shape_is_left_out_whatever_reset_head(make_config, tiny, tmp_path):
    info = tiny[0]
    torch.manual_seed(0)
    wider = build_model(make_config(), {**info, "num_classes": info["num_classes"] + 1})
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
