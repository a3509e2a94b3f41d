"""torchvision datasets: files in each dataset's real format, shapes, channels, stats, safe unpickling, clear errors.

Nothing here touches the network: files are written by `write_sample`, and downloads are made to fail.
"""

import csv
import math
import os
import pickle
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from test_images import bad_predict_inputs as bad_predict_inputs  # run by test_predict.py
from test_images import cli_bad_predict_input as cli_bad_predict_input
from test_images import mixed_predict_inputs as mixed_predict_inputs

import train
from {{ cookiecutter.package_name }}.data import DataError, build_dataloaders, build_datasets
from {{ cookiecutter.package_name }}.data.dataset import PUBLISHED_STATS, build_test_set, read_cifar_pickle
from {{ cookiecutter.package_name }}.data.sample import CIFAR_LABEL_NAMES, write_sample
from {{ cookiecutter.package_name }}.data.sample import main as sample_main

NAMES = ["MNIST", "FashionMNIST", "CIFAR10"]
SIZE = 16  # FAST data.image_size
CLASSES = {
    "MNIST": torchvision.datasets.MNIST.classes,
    "FashionMNIST": torchvision.datasets.FashionMNIST.classes,
    "CIFAR10": CIFAR_LABEL_NAMES,
}
CHANNELS = {"MNIST": 1, "FashionMNIST": 1, "CIFAR10": 3}
NATIVE_SIZE = {"MNIST": 28, "FashionMNIST": 28, "CIFAR10": 32}


def write_tiny(root: Path, name: str, seed: int = 0) -> Path:
    return write_sample(root, name, train_per_class=3, test_per_class=2, seed=seed)  # 30 train, 20 test


def val_inputs(data_root: Path, val_set, tmp_path: Path) -> tuple[list[str], list[str]]:
    """(predict.py inputs, the `input` name predict.py gives each val sample, in val order).

    The val images live inside the dataset's own files, so they are written out as PNGs (lossless) first.
    """
    folder = tmp_path / "val_png"
    folder.mkdir()
    names = []
    for i, (source, _) in enumerate(val_set.samples):
        path = folder / f"{i:04d}.png"
        val_set.load(source).save(path)
        names.append(str(path))
    return [str(folder)], names


def read_written(root: Path, name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images HWC or HW uint8, labels) parsed straight from the files, independently of the loader."""
    if name == "CIFAR10":
        folder = root / "cifar-10-batches-py"
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        entries = []
        for file in files:
            with open(folder / file, "rb") as f:
                entries.append(pickle.load(f, encoding="latin1"))  # files this test wrote itself
        data = np.concatenate([e["data"] for e in entries]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return data, np.array([label for e in entries for label in e["labels"]])
    prefix = "train" if split == "train" else "t10k"
    raw = root / name / "raw"
    images = np.frombuffer((raw / f"{prefix}-images-idx3-ubyte").read_bytes(), np.uint8, offset=16)
    labels = np.frombuffer((raw / f"{prefix}-labels-idx1-ubyte").read_bytes(), np.uint8, offset=8)
    return images.reshape(len(labels), 28, 28), labels


class RunsShell:
    """Unpickling this calls os.system: a stand-in for a tampered CIFAR batch."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.fixture
def no_network(monkeypatch):
    """Every download fails as it would offline, before any connection is made."""

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)


@pytest.mark.parametrize("name", NAMES)
def test_native_channels_labels_classes_and_published_stats(tmp_path, make_config, name):
    cfg = make_config(**{"data.root": write_tiny(tmp_path, name), "data.name": name})
    train_loader, val_loader, info = build_dataloaders(cfg)
    assert info["classes"] == list(CLASSES[name]) and info["num_classes"] == 10
    assert info["image_mode"] == ("RGB" if name == "CIFAR10" else "L")
    assert info["in_channels"] == CHANNELS[name]
    assert (info["mean"], info["std"]) == PUBLISHED_STATS[name]
    assert len(train_loader.dataset) == 24 and len(val_loader.dataset) == 6  # val: 20% of train, held out
    inputs, targets = next(iter(train_loader))
    assert inputs.shape == (cfg.data.batch_size, CHANNELS[name], SIZE, SIZE)
    assert inputs.dtype == torch.float32 and torch.isfinite(inputs).all()
    assert targets.dtype == torch.int64
    train_and_val = train_loader.dataset.samples + val_loader.dataset.samples
    assert {label for _, label in train_and_val} == set(range(10))
    test_set = build_test_set(cfg, info)  # the dataset's own test split, never held out of train
    assert len(test_set) == 20 and {label for _, label in test_set.samples} == set(range(10))
    train_ids = {i for i, _ in train_loader.dataset.samples}
    assert train_ids.isdisjoint(i for i, _ in val_loader.dataset.samples) and len(train_ids) == 24
    assert test_set.source(0) == "test #0" and val_loader.dataset.source(0).startswith("train #")


@pytest.mark.parametrize("name", NAMES)
def test_decoded_pixels_equal_the_written_files(tmp_path, make_config, name):
    root = write_tiny(tmp_path, name)
    size = NATIVE_SIZE[name]  # no resizing, so values compare exactly
    cfg = make_config(**{"data.root": root, "data.name": name, "data.image_size": size})
    train_set, val_set, info = build_datasets(cfg)
    test_set = build_test_set(cfg, info)
    n_train = len(read_written(root, name, "train")[1])
    # Sources index one array of train then test images; val is held out of train, test is the test files.
    for written, dataset, offset in (("train", train_set, 0), ("train", val_set, 0), ("val", test_set, n_train)):
        images, labels = read_written(root, name, written)
        assert [label for source, label in dataset.samples] == [labels[s - offset] for s, _ in dataset.samples]
        for source, _ in (dataset.samples[0], dataset.samples[-1]):
            decoded = np.asarray(dataset.load(source))
            assert decoded.dtype == np.uint8 and np.array_equal(decoded, images[source - offset])
    # The normalised test tensor undoes to the written values, channels in RGB order.
    images, _ = read_written(root, name, "val")
    x, _ = test_set[3]
    mean, std = (torch.tensor(v).view(-1, 1, 1) for v in PUBLISHED_STATS[name])
    expected = torch.from_numpy(images[3].copy()).float().div(255)
    expected = expected.permute(2, 0, 1) if name == "CIFAR10" else expected[None]
    assert torch.allclose(x * std + mean, expected, atol=1e-5)


@pytest.mark.parametrize(("name", "mode", "channels"), [("MNIST", "RGB", 3), ("CIFAR10", "L", 1)])
def test_other_image_mode_converts_and_computes_stats(tmp_path, make_config, name, mode, channels):
    cfg = make_config(**{"data.root": write_tiny(tmp_path, name), "data.name": name, "data.image_mode": mode})
    train_set, val_set, info = build_datasets(cfg)
    assert info["image_mode"] == mode and info["in_channels"] == channels
    assert len(info["mean"]) == channels and (info["mean"], info["std"]) != PUBLISHED_STATS[name]
    for dataset in (train_set, val_set):
        assert dataset[0][0].shape == (channels, SIZE, SIZE)
    if mode == "RGB":
        assert info["mean"][0] == info["mean"][1] == info["mean"][2]  # grey digits: R == G == B
        x, _ = val_set[0]
        assert torch.allclose(x[0], x[1]) and torch.allclose(x[1], x[2])


@pytest.mark.parametrize(
    ("name", "folder", "a_file"),
    [
        ("MNIST", "MNIST/raw", "train-images-idx3-ubyte"),
        ("FashionMNIST", "FashionMNIST/raw", "t10k-labels-idx1-ubyte"),
        ("CIFAR10", "cifar-10-batches-py", "data_batch_1"),
    ],
)
def test_missing_files_without_download_say_where_and_how(tmp_path, make_config, name, folder, a_file):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(DataError, match="data.download") as excinfo:
        build_dataloaders(make_config(**{"data.root": root, "data.name": name, "data.download": False}))
    message = str(excinfo.value)
    assert str(root / folder) in message and a_file in message  # where, and which files
    assert "data.download=true" in message and f"copy them into {root / folder}" in message  # the two ways to get them
    assert list(root.iterdir()) == []  # nothing fetched or written
    with pytest.raises(DataError, match="data.download"):  # a missing root is caught first
        build_dataloaders(make_config(**{"data.root": tmp_path / "nowhere", "data.name": name}))


@pytest.mark.parametrize("name", ["CIFAR10", "FashionMNIST"])
def test_train_one_epoch_on_files_from_the_sample_writer(tmp_path, cli_overrides, capsys, name):
    root = tmp_path / "data"
    sample_main([str(root), "--name", name, "--train-per-class", "3", "--test-per-class", "1"])  # its CLI
    assert f"data.name={name}" in capsys.readouterr().out
    settings = {"data.root": root, "data.name": name, "run_name": "run", "output_dir": tmp_path / "runs"}
    assert train.main(cli_overrides(**settings)) == 0
    run_dir = tmp_path / "runs" / "run"
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as file:
        history = list(csv.DictReader(file))
    assert len(history) == 1 and math.isfinite(float(history[0]["val_loss"]))
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert state["data_info"]["in_channels"] == CHANNELS[name]
    first_conv = next(w for w in state["model"].values() if w.ndim == 4)
    assert first_conv.shape[1] == CHANNELS[name]  # the model takes the dataset's channels (3 vs 1)


@pytest.mark.parametrize("name", NAMES)
def test_failed_download_names_dataset_root_and_the_way_out(tmp_path, make_config, no_network, name):
    root = tmp_path / "fresh"
    with pytest.raises(DataError, match=f"downloading {name} into") as excinfo:
        build_datasets(make_config(**{"data.root": root, "data.name": name, "data.download": True}))
    message = str(excinfo.value)
    assert str(root) in message and "no network in tests" in message and "data.download=false" in message


def test_tampered_cifar_pickle_is_refused_not_run(tmp_path, make_config):
    root = write_tiny(tmp_path, "CIFAR10")
    marker = tmp_path / "pwned"
    batch = root / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(pickle.dumps({"data": RunsShell(f"touch {marker}"), "labels": []}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_2: refusing to unpickle (posix|nt)\.system"):
        build_datasets(make_config(**{"data.root": root, "data.name": "CIFAR10"}))
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar_pickles_of_any_protocol_load(tmp_path, protocol):
    entry = {"data": np.arange(2 * 3072).astype(np.uint8).reshape(2, 3072), "labels": [1, 9], "n": np.int64(2)}
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(entry, protocol=protocol))
    loaded = read_cifar_pickle(path)
    assert np.array_equal(loaded["data"], entry["data"]) and loaded["labels"] == [1, 9] and loaded["n"] == 2


@pytest.mark.parametrize(
    ("name", "file"),
    [
        ("MNIST", "MNIST/raw/train-images-idx3-ubyte"),
        ("FashionMNIST", "FashionMNIST/raw/t10k-labels-idx1-ubyte"),
        ("CIFAR10", "cifar-10-batches-py/data_batch_3"),
    ],
)
def test_truncated_file_is_named(tmp_path, make_config, name, file):
    root = write_tiny(tmp_path, name)
    path = root / file
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match="truncated") as excinfo:
        build_datasets(make_config(**{"data.root": root, "data.name": name}))
    assert str(path) in str(excinfo.value)


def test_data_info_from_a_checkpoint_fixes_mode_stats_and_classes(tmp_path, make_config):
    mnist = make_config(**{"data.root": write_tiny(tmp_path, "MNIST"), "data.name": "MNIST"})
    _, _, info = build_datasets(mnist)
    saved = {**info, "image_mode": "RGB", "in_channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3}
    _, val_set, reused = build_datasets(mnist, saved)
    assert reused == saved and val_set[0][0].shape == (3, SIZE, SIZE)
    cifar = make_config(**{"data.root": write_tiny(tmp_path, "CIFAR10"), "data.name": "CIFAR10"})
    with pytest.raises(DataError, match="0 - zero") as excinfo:
        build_datasets(cifar, info)
    assert "airplane" in str(excinfo.value)


def test_image_loader_survives_pickling_for_worker_processes(tmp_path, make_config):
    cfg = make_config(**{"data.root": write_tiny(tmp_path, "CIFAR10"), "data.name": "CIFAR10"})
    train_set, _, _ = build_datasets(cfg)
    load = pickle.loads(pickle.dumps(train_set.load))
    assert np.array_equal(np.asarray(load(5)), np.asarray(train_set.load(5)))


@pytest.mark.parametrize("name", NAMES)
def test_write_sample_is_reproducible(tmp_path, name):
    def files(root):
        return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    first = files(write_tiny(tmp_path / "a", name, seed=3))
    assert files(write_tiny(tmp_path / "b", name, seed=3)) == first
    assert len(first) == (7 if name == "CIFAR10" else 4)
    assert files(write_tiny(tmp_path / "c", name, seed=4)) != first
