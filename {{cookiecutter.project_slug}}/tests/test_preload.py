"""data.preload: the same samples and labels as lazy loading, batched by indexing, refused when too big."""

import logging
{% if cookiecutter.dataset_type in ["image_folder", "image_list"] %}
import shutil
{% endif %}

import pytest
import torch

import train
from {{ cookiecutter.package_name }}.data import DataError, build_dataloaders, preload
from {{ cookiecutter.package_name }}.data.preload import PreloadedLoader

{% if cookiecutter.dataset_type != "tabular_csv" %}
# Deterministic transforms, so the lazy and preloaded samples can be compared one by one.
NO_AUGMENT = {"data.random_resized_crop": False, "data.horizontal_flip": False}
{% else %}
NO_AUGMENT = {}
{% endif %}


def lazy_samples(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [dataset[i] for i in range(len(dataset))]
    return torch.stack([torch.as_tensor(x) for x, _ in pairs]), torch.tensor([int(y) for _, y in pairs])


def preloaded_samples(loader: PreloadedLoader) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = loader.transform(loader.inputs) if loader.transform else loader.inputs
    return inputs, loader.targets


def test_preload_gives_the_same_samples_and_labels_as_lazy_loading(make_config):
    lazy = build_dataloaders(make_config(**NO_AUGMENT))
    loaded = build_dataloaders(make_config(**NO_AUGMENT, **{"data.preload": "cpu"}))
    assert lazy[2] == loaded[2]  # same classes and normalisation
    for lazy_loader, preloaded_loader in zip(lazy[:2], loaded[:2], strict=True):
        assert isinstance(preloaded_loader, PreloadedLoader)
        x_lazy, y_lazy = lazy_samples(lazy_loader.dataset)
        x_pre, y_pre = preloaded_samples(preloaded_loader)
        assert torch.equal(y_lazy, y_pre)
        assert x_pre.dtype == torch.float32 and x_pre.shape == x_lazy.shape
        torch.testing.assert_close(x_pre, x_lazy, atol=1e-5, rtol=1e-5)
{% if cookiecutter.dataset_type != "tabular_csv" %}
        assert preloaded_loader.inputs.dtype == torch.uint8  # held 4x smaller than float
{% endif %}


def test_preloaded_batches_cover_each_sample_once_in_a_seeded_order(make_config):
    train_loader, val_loader, _ = build_dataloaders(make_config(**{"data.preload": "cpu"}))
    n = len(train_loader.targets)
    assert len(train_loader.dataset) == n
    batches = list(train_loader)
    assert len(batches) == len(train_loader)
    assert all(len(y) == train_loader.batch_size for _, y in batches[:-1])
    labels = torch.cat([y for _, y in batches])
    assert sorted(labels.tolist()) == sorted(train_loader.targets.tolist())
    train_loader.generator.manual_seed(7)
    first = torch.cat([y for _, y in train_loader])
    train_loader.generator.manual_seed(7)
    assert torch.equal(first, torch.cat([y for _, y in train_loader]))  # the trainer reseeds per epoch
    val_labels = torch.cat([y for _, y in val_loader])
    assert torch.equal(val_labels, val_loader.targets)  # validation in order, every sample


def test_train_shards_are_padded_even_with_fewer_samples_than_ranks():
    x, y = torch.zeros(1, 2), torch.arange(1)
    shards = [PreloadedLoader(x, y, 4, shuffle=True, shard=(rank, 3)) for rank in range(3)]
    assert [[b.tolist() for _, b in loader] for loader in shards] == [[[0]]] * 3  # no rank left without a batch


def test_drop_last_only_for_a_single_leftover_sample():
    x, y = torch.zeros(9, 2), torch.arange(9)
    assert len(PreloadedLoader(x, y, batch_size=4, drop_last=True)) == 2
    assert [len(b) for _, b in PreloadedLoader(x, y, batch_size=4)] == [4, 4, 1]


def test_preload_logs_its_memory(make_config, caplog):
    with caplog.at_level(logging.INFO):
        build_dataloaders(make_config(**{"data.preload": "cpu"}))
    for split in ("train", "val"):
        assert any(f" {split} " in m and m.startswith("preloaded") and "MiB" in m for m in caplog.messages), split


def test_preload_larger_than_the_free_memory_share_is_refused(make_config, monkeypatch):
    monkeypatch.setattr(preload, "free_memory", lambda device: 1000)
    with pytest.raises(DataError) as err:
        build_dataloaders(make_config(**{"data.preload": "cpu", "data.preload_memory_fraction": 0.5}))
    message = str(err.value)
    assert "data.preload=cpu" in message and "data.preload_memory_fraction=0.5" in message
    assert "data.preload=false" in message  # says what to do instead


def test_preload_device_falls_back_to_the_cpu_device(make_config):
    train_loader, _, _ = build_dataloaders(make_config(**{"data.preload": "device"}))
    assert train_loader.inputs.device.type == "cpu"  # trainer.device=cpu in the fast settings


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_preload_device_holds_the_data_on_the_gpu(make_config):
    train_loader, _, _ = build_dataloaders(make_config(**{"data.preload": "device", "trainer.device": "cuda"}))
    inputs, targets = next(iter(train_loader))
    assert inputs.is_cuda and targets.is_cuda


def test_training_on_preloaded_data_resumes_exactly(tmp_path, cli_overrides):
    settings = {"data.preload": "cpu", "trainer.epochs": 2, "model.dropout": 0.5}
    assert train.main(cli_overrides(run_name="straight", **settings)) == 0
    assert train.main(cli_overrides(run_name="resumed", **{**settings, "trainer.epochs": 1})) == 0
    runs = tmp_path / "runs"
    assert train.main(["--resume", str(runs / "resumed"), "trainer.epochs=2"]) == 0
    straight = torch.load(runs / "straight" / "checkpoints" / "last.pt", weights_only=True)
    resumed = torch.load(runs / "resumed" / "checkpoints" / "last.pt", weights_only=True)
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
{% if cookiecutter.dataset_type in ["image_folder", "image_list"] %}


def test_corrupt_images_are_dropped_from_the_preload(tmp_path, make_config, data_root, caplog):
    root = tmp_path / "copy"
    shutil.copytree(data_root, root)
    victim = next(p for p in sorted(root.rglob("*")) if p.suffix in (".png", ".jpg"))
    victim.write_bytes(b"garbage")
    settings = {"data.root": root, "data.skip_corrupt": True}
    lazy_train, lazy_val, _ = build_dataloaders(make_config(**settings))
    with caplog.at_level(logging.WARNING):
        train_loader, val_loader, _ = build_dataloaders(make_config(**settings, **{"data.preload": "cpu"}))
    assert "skipped 1 corrupt" in caplog.text and victim.name in caplog.text
    total = len(train_loader.targets) + len(val_loader.targets)
    assert total == len(lazy_train.dataset) + len(lazy_val.dataset) - 1
{% endif %}
