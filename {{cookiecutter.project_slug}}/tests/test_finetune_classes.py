"""`model.weights` from another run: its classifier head is kept, remapped or started fresh by the class names
(test_finetune.py: what does not depend on them)."""

import logging
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import fast_overrides
from test_finetune import assert_head, assert_zero_head, fine_tuned, save_weights, trained_looking

from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.data import build_dataloaders
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
    """save(classes) -> the path of a trained-looking model's checkpoint of this project, trained on `classes`;
    `source.model` is that model."""
    model = trained_looking(make_config, tiny[0])

    def save(classes):
        return save_weights(model, tmp_path, {"classes": list(classes)})

    save.model = model
    return save


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
