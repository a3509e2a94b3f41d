"""data.preload: the same batches and targets as lazy loading, refused when too big; datasets that pickle.

Preloaded data is batched by indexing, with a batched twin of the per-sample transforms; these tests
compare what the loaders actually yield, batch by batch, against the lazily read samples.
"""

import logging
import pickle

import pytest
import torch
from test_train import settings_that_exist

import train
from {{ cookiecutter.package_name }}.config import default_choices
from {{ cookiecutter.package_name }}.data import DataError, build_dataloaders, build_datasets, preload
from {{ cookiecutter.package_name }}.data.preload import PreloadedLoader

# Deterministic train transforms (image data), so preloaded train samples can be matched to lazy ones.
NO_AUGMENT = settings_that_exist({"data.random_resized_crop": False, "data.horizontal_flip": False})
CPU_PRELOAD = {"data.preload": "cpu"}


def flat(inputs: torch.Tensor) -> torch.Tensor:
    return inputs.flatten(1).double()


def test_preloaded_val_batches_equal_the_lazy_val_batches(make_config):
    """Same order, same tensors, untouched by augmentation (on for image data in the defaults)."""
    _, lazy, lazy_info = build_dataloaders(make_config())
    _, loaded, info = build_dataloaders(make_config(**CPU_PRELOAD))
    assert isinstance(loaded, PreloadedLoader) and info == lazy_info  # same targets and normalisation
    lazy_batches, loaded_batches = list(lazy), list(loaded)
    assert len(lazy_batches) == len(loaded_batches) == len(loaded)
    for (x_lazy, y_lazy), (x_pre, y_pre) in zip(lazy_batches, loaded_batches, strict=True):
        assert torch.equal(y_pre, y_lazy)
        assert x_pre.dtype == torch.float32 and x_pre.shape == x_lazy.shape
        torch.testing.assert_close(x_pre, x_lazy, atol=1e-5, rtol=1e-5)


def test_preloaded_train_batches_carry_each_samples_own_target(make_config):
    """Every image (or row) the shuffled train loader yields comes with the target of that very sample."""
    cfg = make_config(**NO_AUGMENT, **CPU_PRELOAD)
    lazy_set = build_datasets(make_config(**NO_AUGMENT))[0]
    x_lazy = flat(torch.stack([torch.as_tensor(lazy_set[i][0]) for i in range(len(lazy_set))]))
    y_lazy = torch.stack([torch.as_tensor(lazy_set[i][1]) for i in range(len(lazy_set))])
    y_rows = y_lazy.reshape(len(y_lazy), -1)  # one row of targets per sample
    different = (y_rows[:, None] != y_rows[None, :]).any(dim=-1)
    assert torch.cdist(x_lazy, x_lazy)[different].min() > 1e-2  # samples with different targets differ
    train_loader = build_dataloaders(cfg)[0]
    for seed in (1, 2):  # two shuffles
        train_loader.generator.manual_seed(seed)
        seen = []
        for inputs, targets in train_loader:
            distance, match = torch.cdist(flat(inputs), x_lazy).min(dim=1)  # the lazy sample it is
            assert distance.max() < 1e-3
            assert torch.equal(targets, y_lazy[match])
            seen += match.tolist()
        assert sorted(seen) == list(range(len(lazy_set)))  # each sample once per epoch
        assert seen != sorted(seen)  # shuffled


def test_preloaded_batches_come_in_a_seeded_order(make_config):
    train_loader, val_loader, _ = build_dataloaders(make_config(**CPU_PRELOAD))
    assert all(len(y) == train_loader.batch_size for _, y in list(train_loader)[:-1])
    train_loader.generator.manual_seed(7)
    first = torch.cat([y for _, y in train_loader])
    train_loader.generator.manual_seed(7)
    assert torch.equal(first, torch.cat([y for _, y in train_loader]))  # the trainer reseeds per epoch
    train_loader.generator.manual_seed(8)
    assert not torch.equal(first, torch.cat([y for _, y in train_loader]))
    assert torch.equal(torch.cat([y for _, y in val_loader]), val_loader.targets)  # validation in order


@pytest.mark.parametrize(("n", "shuffle", "sizes"), [(9, True, [4, 4]), (9, False, [4, 4, 1]), (10, True, [4, 4, 2])])
def test_a_single_leftover_train_sample_is_dropped_and_only_then(n, shuffle, sizes):
    x, y = torch.zeros(n, 2), torch.arange(n)
    loader = PreloadedLoader(x, y, batch_size=4, shuffle=shuffle, generator=torch.Generator().manual_seed(0))
    assert len(loader) == len(sizes) and [len(b) for _, b in loader] == sizes  # BatchNorm needs 2 samples


def test_preload_logs_its_memory(make_config, caplog):
    with caplog.at_level(logging.INFO):
        build_dataloaders(make_config(**CPU_PRELOAD))
    for split in ("train", "val"):
        assert any(f" {split} " in m and m.startswith("preloaded") and "MiB" in m for m in caplog.messages), split


def test_preload_larger_than_the_free_memory_share_is_refused(make_config, monkeypatch):
    monkeypatch.setattr(preload, "free_memory", lambda device: 1000)
    with pytest.raises(DataError) as err:
        build_dataloaders(make_config(**CPU_PRELOAD, **{"data.preload_memory_fraction": 0.5}))
    message = str(err.value)
    assert "data.preload=cpu" in message and "data.preload_memory_fraction=0.5" in message
    assert "data.preload=false" in message  # says what to do instead


@pytest.mark.parametrize("preload", [p for p in default_choices()["data.preload"] if p in ("cpu", "disk")])
def test_training_on_preloaded_data_resumes_exactly(tmp_path, cli_overrides, preload):
    cache = {"data.cache_dir": str(tmp_path / "cache")} if preload == "disk" else {}  # disk: image data
    settings = {"data.preload": preload, **cache, "trainer.epochs": 2, "model.dropout": 0.5}
    assert train.main(cli_overrides(run_name="straight", **settings)) == 0
    assert train.main(cli_overrides(run_name="resumed", **{**settings, "trainer.epochs": 1})) == 0
    runs = tmp_path / "runs"
    assert train.main(["--resume", str(runs / "resumed"), "trainer.epochs=2"]) == 0
    straight = torch.load(runs / "straight" / "checkpoints" / "last.pt", weights_only=True)
    resumed = torch.load(runs / "resumed" / "checkpoints" / "last.pt", weights_only=True)
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key


# ---- worker processes: forkserver (the default from Python 3.14) and spawn pickle the dataset ----------
def test_datasets_pickle(make_config):
    for dataset in build_datasets(make_config())[:2]:
        copy = pickle.loads(pickle.dumps(dataset))
        assert len(copy) == len(dataset)
        x, y = copy[len(copy) - 1]
        x_orig, y_orig = dataset[len(dataset) - 1]
        assert torch.equal(torch.as_tensor(y), torch.as_tensor(y_orig)) and x.shape == x_orig.shape


def test_a_forkserver_worker_yields_what_the_main_process_does(make_config):
    _, in_process, _ = build_dataloaders(make_config(**{"data.num_workers": 0}))
    _, in_worker, _ = build_dataloaders(make_config(**{"data.num_workers": 1}))
    in_worker.multiprocessing_context = "forkserver"  # a fresh interpreter: gets the dataset by pickle
    (x0, y0), (x1, y1) = next(iter(in_process)), next(iter(in_worker))
    assert torch.equal(y0, y1) and torch.equal(x0, x1)
