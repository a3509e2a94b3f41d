"""data.preload=disk: decoded once into a cache file, then the same batches as preload=cpu, read memory-mapped.

Exact resume on it is tested with preload=cpu's, in test_preload.py."""

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from test_preload import NO_AUGMENT
from tiny_data import write_tiny_sample

import train
from {{ cookiecutter.package_name }}.data import DataError, build_dataloaders, build_datasets, disk_cache
from {{ cookiecutter.package_name }}.data.images import ImageDataset


@pytest.fixture
def disk(tmp_path):
    """Settings for data.preload=disk with the cache under tmp_path."""
    return {"data.preload": "disk", "data.cache_dir": str(tmp_path / "cache")}


def cache_files(settings) -> list[str]:
    return sorted(p.name for p in Path(settings["data.cache_dir"]).glob("*") if p.name != ".lock")


def batches(loader) -> list:
    loader.generator.manual_seed(3)  # the trainer reseeds every epoch; the same seed, the same order
    return list(loader)


def test_disk_batches_equal_the_in_memory_ones_and_the_second_run_decodes_nothing(make_config, disk, monkeypatch):
    in_memory = build_dataloaders(make_config(**NO_AUGMENT, **{"data.preload": "cpu"}))
    built = build_dataloaders(make_config(**NO_AUGMENT, **disk))
    assert len(cache_files(disk)) == 4  # train and val: images and index

    def no_build(*args):
        raise AssertionError("the cache was built again")

    monkeypatch.setattr(disk_cache, "build", no_build)
    read = build_dataloaders(make_config(**NO_AUGMENT, **disk))
    assert read[2] == built[2] == in_memory[2]  # data_info: classes, normalisation
    for loaders in zip(in_memory[:2], built[:2], read[:2], strict=True):
        expected = batches(loaders[0])
        for loader in loaders[1:]:
            for (x, y), (x_expected, y_expected) in zip(batches(loader), expected, strict=True):
                assert torch.equal(y, y_expected) and torch.equal(x, x_expected)


def test_a_run_that_builds_the_cache_and_one_that_reads_it_train_alike(tmp_path, cli_overrides, disk):
    """Building decodes with DataLoader workers, which draw from the global RNG; reading does not. The model
    is seeded after the data, so both runs start from, and end with, the same weights."""
    settings = {**disk, "data.num_workers": 1}
    for name in ("builds", "reads"):
        assert train.main(cli_overrides(run_name=name, **settings)) == 0
    runs = tmp_path / "runs"
    built, read = (torch.load(runs / n / "checkpoints" / "last.pt", weights_only=True) for n in ("builds", "reads"))
    for key, value in built["model"].items():
        assert torch.equal(value, read["model"][key]), key


def test_the_key_covers_the_files_and_the_settings(tmp_path, make_config, disk):
    root = write_tiny_sample(tmp_path / "data")
    cfg = make_config(**disk, **{"data.root": str(root)})
    train_set = build_datasets(cfg)[0]
    key = disk_cache.cache_key(train_set, "train")
    assert disk_cache.cache_key(train_set, "val") != key
    source = train_set.samples[0][0]
    if isinstance(source, str):  # a file: touched, the same bytes but a newer mtime
        stamp = time.time() + 10
        os.utime(source, (stamp, stamp))
    else:  # an image of an array (torchvision): one pixel changed
        images = train_set.load.images.copy()
        images[source].flat[0] ^= 1
        train_set.load = type(train_set.load)(images, train_set.load.n_train)
    assert disk_cache.cache_key(train_set, "train") != key
    build_dataloaders(cfg)
    build_dataloaders(make_config(**disk, **{"data.root": str(root), "data.image_size": cfg.data.image_size + 4}))
    assert len(cache_files(disk)) == 8  # both splits at both sizes


def test_a_cache_without_its_index_or_cut_short_is_never_read(make_config, disk, caplog):
    build_dataloaders(make_config(**disk))
    folder = Path(disk["data.cache_dir"])
    index_file = next(folder.glob("train-*.json"))
    index_file.unlink()  # as after a crash between the two renames
    val_data = next(folder.glob("val-*.uint8"))
    val_data.write_bytes(val_data.read_bytes()[:-1])  # an image file cut short
    with caplog.at_level(logging.INFO):
        train_loader, val_loader, _ = build_dataloaders(make_config(**disk))
    assert sum("decoding" in m for m in caplog.messages) == 2  # both rebuilt
    assert len(json.loads(index_file.read_text())["labels"]) == len(train_loader.targets)
    assert val_data.stat().st_size == val_loader.inputs.numel()


def test_a_failed_write_leaves_no_cache_and_names_the_file(make_config, disk, monkeypatch):
    def disk_full(path, write):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(disk_cache, "atomic_write", disk_full)
    with pytest.raises(DataError, match=r"cannot write the data.preload=disk cache .*train-.*No space left"):
        build_dataloaders(make_config(**disk))
    assert cache_files(disk) == []
    monkeypatch.setattr(disk_cache.shutil, "disk_usage", lambda path: SimpleNamespace(free=10))
    with pytest.raises(DataError, match=r"needs [\d.]+ MiB in data.cache_dir=.*, which has 0.0 MiB free"):
        build_dataloaders(make_config(**disk))


@pytest.mark.skipif(sys.platform == "win32", reason="no file lock on Windows")
def test_one_process_builds_a_cache_while_the_others_wait(tmp_path):
    """Processes that find no cache (two runs, or the processes of one job): one decodes, the others wait."""
    events = []

    def second():
        with disk_cache.exclusive(tmp_path / ".lock"):
            events.append("second")

    with disk_cache.exclusive(tmp_path / ".lock"):
        waiting = threading.Thread(target=second)
        waiting.start()
        waiting.join(timeout=0.3)
        events.append("first done")
    waiting.join(timeout=10)
    assert events == ["first done", "second"]


def rss_anon() -> int:
    """This process's private (anonymous) resident memory: what a mapped file does not count in."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


@pytest.mark.skipif(sys.platform != "linux", reason="reads RssAnon from Linux's /proc")
def test_reading_a_cache_larger_than_a_batch_keeps_the_memory_flat(tmp_path, disk):
    n, shape, block = 12000, (3, 64, 64), 500  # 147 MB of images; image i holds the value i // block
    dataset = ImageDataset([(i, i % 5) for i in range(n)], None, "RGB", 64)  # the pixels come from make_batches

    def make_batches():
        for start in range(0, n, block):
            yield torch.full((block, *shape), start // block, dtype=torch.uint8), torch.arange(start, start + block) % 5

    cfg = SimpleNamespace(data=SimpleNamespace(cache_dir=disk["data.cache_dir"]))
    built, _ = disk_cache.cached_images(dataset, cfg, "train", make_batches, shape)
    int(built[torch.randperm(n)[:64]][:, :, 0, 0].sum())  # the allocator's first batch-sized blocks
    del built
    before, total = rss_anon(), 0
    inputs, targets = disk_cache.cached_images(dataset, cfg, "train", make_batches, shape)  # read again: mapped
    assert inputs.shape == (n, *shape) and torch.equal(targets, torch.arange(n) % 5)
    for _ in range(2):  # two epochs of shuffled batches of 64
        for index in torch.randperm(n).split(64):
            total += int(inputs[index][:, :, 0, 0].sum())
    assert total == 2 * 3 * block * sum(range(n // block))  # every image read, each once per epoch
    grown = rss_anon() - before  # batches and the allocator's caches, not the 147 MB
    assert grown < inputs.numel() // 4, f"the reading process holds {grown} bytes more: the cache was copied"
