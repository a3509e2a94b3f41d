"""Image-folder data: layout, shapes, dtypes, explicit RGB, labels, val split and clear errors."""

import logging
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_images import APPLE_DOUBLE, check_skip_corrupt_training, unreadable_files
from test_images import bad_predict_inputs as bad_predict_inputs  # run by test_predict.py
from test_images import cli_bad_predict_input as cli_bad_predict_input
from test_images import mixed_predict_inputs as mixed_predict_inputs
from test_report import (
    check_optional_test_split,
    check_unknown_test_class_stops_training_before_it_starts,
)

from {{ cookiecutter.package_name }}.data import DataError, build_dataloaders, build_datasets
from {{ cookiecutter.package_name }}.data.common import SAMPLE_DATA_ROOT
from {{ cookiecutter.package_name }}.data.sample import CLASSES, write_sample

SIZE = 16  # FAST data.image_size


def save_image(path: Path, mode="RGB", size=(20, 12), color=(200, 100, 50)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def write_folder(root: Path, split: str, counts: dict, size=(6, 4)) -> None:
    """`counts` small solid-colour PNGs per class under root/split/<class>/."""
    for name, count in counts.items():
        for i in range(count):
            save_image(root / split / name / f"{name}_{i:03d}.png", size=size, color=(10 * i, 20, 30))


def val_inputs(data_root: Path, val_set, tmp_path: Path) -> tuple[list[str], list[str]]:
    """(predict.py inputs, the `input` name predict.py gives each val sample, in val order)."""
    return [str(data_root / "val")], [str(Path(path)) for path, _ in val_set.samples]


def denormalise(x: torch.Tensor, info: dict) -> torch.Tensor:
    mean = torch.tensor(info["mean"]).view(-1, 1, 1)
    std = torch.tensor(info["std"]).view(-1, 1, 1)
    return x * std + mean


def test_sample_data_layout_and_batches(data_root, make_config):
    for split in ("train", "val"):
        assert sorted(p.name for p in (data_root / split).iterdir()) == sorted(CLASSES)
        for name in CLASSES:
            assert any((data_root / split / name).iterdir())
    cfg = make_config()
    train_loader, val_loader, info = build_dataloaders(cfg)
    assert info["classes"] == sorted(CLASSES)
    assert info["num_classes"] == len(CLASSES)
    assert info["in_channels"] == 3
    assert len(train_loader.dataset) == 6 * len(CLASSES)
    assert len(val_loader.dataset) == 2 * len(CLASSES)
    inputs, targets = next(iter(train_loader))
    assert inputs.shape == (cfg.data.batch_size, 3, SIZE, SIZE)
    assert inputs.dtype == torch.float32
    assert targets.dtype == torch.int64
    assert targets.shape == (cfg.data.batch_size,)
    assert int(targets.min()) >= 0 and int(targets.max()) < len(CLASSES)
    assert torch.isfinite(inputs).all()
    batches = list(val_loader)
    assert sum(len(t) for _, t in batches) == len(val_loader.dataset)  # val keeps every sample


def test_labels_follow_the_class_folders(data_root, make_config):
    train_set, val_set, info = build_datasets(make_config())
    for dataset in (train_set, val_set):
        for path, label in dataset.samples:
            assert Path(path).parent.name == info["classes"][label]
        _, label = dataset[0]
        assert isinstance(label, int)


def test_every_image_mode_and_size_becomes_explicit_rgb(tmp_path, make_config):
    root = tmp_path / "mixed"
    save_image(root / "train" / "a" / "gray.png", "L", (20, 10), 128)
    save_image(root / "train" / "a" / "palette.png", "P", (9, 31), 3)
    save_image(root / "train" / "b" / "rgba.png", "RGBA", (7, 33), (255, 0, 0, 128))
    save_image(root / "train" / "b" / "photo.jpg", "RGB", (64, 48), (0, 0, 255))
    save_image(root / "val" / "a" / "gray.png", "L", (5, 5), 128)
    save_image(root / "val" / "b" / "cmyk.jpg", "CMYK", (12, 40), (0, 0, 0, 0))
    train_set, val_set, info = build_datasets(make_config(**{"data.root": root}))
    assert info["in_channels"] == 3
    for dataset in (train_set, val_set):
        for i in range(len(dataset)):
            x, _ = dataset[i]
            assert x.shape == (3, SIZE, SIZE)
            assert x.dtype == torch.float32
    gray = denormalise(val_set[0][0], info)
    assert torch.allclose(gray[0], gray[1]) and torch.allclose(gray[1], gray[2])  # grey: R == G == B

    cfg = make_config(**{"data.root": root, "data.image_mode": "L", "data.mean": [0.5], "data.std": [0.25]})
    train_set, val_set, info = build_datasets(cfg)
    assert info["in_channels"] == 1
    for dataset in (train_set, val_set):
        for i in range(len(dataset)):
            assert dataset[i][0].shape == (1, SIZE, SIZE)


@pytest.mark.parametrize(("color", "channel"), [((255, 0, 0), 0), ((0, 255, 0), 1), ((0, 0, 255), 2)])
def test_channels_are_in_rgb_order(tmp_path, make_config, color, channel):
    root = tmp_path / "colour"
    save_image(root / "train" / "a" / "x.png", color=color)
    save_image(root / "val" / "a" / "x.png", color=color)
    _, val_set, info = build_datasets(make_config(**{"data.root": root}))
    x = denormalise(val_set[0][0], info)
    assert torch.allclose(x[channel], torch.ones(SIZE, SIZE), atol=1e-5)
    for other in {0, 1, 2} - {channel}:
        assert torch.allclose(x[other], torch.zeros(SIZE, SIZE), atol=1e-5)


def test_normalisation_is_computed_from_train_images_only(tmp_path, make_config):
    root = tmp_path / "two_colours"
    train_colour, val_colour = (200, 100, 50), (0, 40, 250)  # very different: a mix would show
    for i in range(3):
        save_image(root / "train" / "ab"[i % 2] / f"{i}.png", size=(20 + i, 12), color=train_colour)
    save_image(root / "val" / "a" / "0.png", color=val_colour)
    save_image(root / "val" / "b" / "0.png", color=val_colour)
    _, val_set, info = build_datasets(make_config(**{"data.root": root, "data.mean": [], "data.std": []}))
    assert info["mean"] == pytest.approx([c / 255 for c in train_colour], abs=1e-3)
    assert info["std"] == pytest.approx([1e-3] * 3)  # one flat colour: the floor, not val's spread
    x = denormalise(val_set[0][0], info)  # val is normalised with train's statistics and undoes exactly
    assert torch.allclose(x[:, 0, 0], torch.tensor(val_colour) / 255, atol=1e-3)


def test_val_split_from_val_fraction_is_disjoint_seeded_and_sized(tmp_path, make_config):
    root = tmp_path / "no_val"
    write_folder(root, "train", {"a": 10, "b": 10})

    def split(seed, fraction=0.25):
        cfg = make_config(**{"data.root": root, "seed": seed, "data.val_fraction": fraction})
        train_set, val_set, _ = build_datasets(cfg)
        return [p for p, _ in train_set.samples], [p for p, _ in val_set.samples]

    train, val = split(seed=1)
    assert len(val) == 5 and len(train) == 15
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(str(p) for p in root.rglob("*.png"))
    assert split(seed=1) == (train, val)  # the same seed gives the same split
    assert split(seed=2)[1] != val
    assert len(split(seed=1, fraction=0.5)[1]) == 10


def test_augmentation_on_train_only(tmp_path, make_config):
    root = tmp_path / "halves"
    for split in ("train", "val"):
        path = save_image(root / split / "a" / "x.png", size=(SIZE, SIZE), color=(255, 0, 0))
        with Image.open(path) as image:
            image = image.copy()
        image.paste((0, 0, 255), (SIZE // 2, 0, SIZE, SIZE))  # left red, right blue
        image.save(path)
    flip_only = {"data.root": root, "data.random_resized_crop": False, "data.horizontal_flip": True}
    train_set, val_set, _ = build_datasets(make_config(**flip_only))
    val_views = {tuple(val_set[0][0][0, 0].tolist()) for _ in range(10)}
    assert len(val_views) == 1
    torch.manual_seed(0)
    train_views = {tuple(train_set[0][0][0, 0].tolist()) for _ in range(30)}
    assert len(train_views) == 2  # flipped and not flipped
    off = {**flip_only, "data.horizontal_flip": False}
    train_set, _, _ = build_datasets(make_config(**off))
    assert len({tuple(train_set[0][0][0, 0].tolist()) for _ in range(10)}) == 1
    crop = {**off, "data.random_resized_crop": True, "data.crop_scale": [0.3, 0.5]}
    train_set, _, _ = build_datasets(make_config(**crop))
    assert len({tuple(train_set[0][0][0, 0].tolist()) for _ in range(10)}) > 1  # crops differ


def test_unknown_class_in_val_is_an_error(tmp_path, make_config):
    root = tmp_path / "extra_class"
    write_folder(root, "train", {"a": 2, "b": 2})
    write_folder(root, "val", {"a": 1, "c": 1})
    with pytest.raises(DataError, match="'c'"):
        build_datasets(make_config(**{"data.root": root}))


def test_val_may_miss_a_class(tmp_path, make_config):
    root = tmp_path / "fewer_val_classes"
    write_folder(root, "train", {"a": 2, "b": 2})
    write_folder(root, "val", {"b": 1})
    _, val_set, info = build_datasets(make_config(**{"data.root": root}))
    assert info["classes"] == ["a", "b"]
    assert [label for _, label in val_set.samples] == [1]


def test_corrupt_image_names_the_file(tmp_path, make_config):
    root = tmp_path / "corrupt"
    write_folder(root, "train", {"a": 2})
    write_folder(root, "val", {"a": 1})
    bad = root / "train" / "a" / "zz_bad.png"
    bad.write_bytes(b"this is not a PNG file")
    with pytest.raises(DataError, match="zz_bad.png"):
        build_datasets(make_config(**{"data.root": root}))  # computing mean/std reads it
    fixed = {"data.root": root, "data.mean": [0.5] * 3, "data.std": [0.2] * 3}
    train_set, _, _ = build_datasets(make_config(**fixed))
    index = [p for p, _ in train_set.samples].index(str(bad))
    with pytest.raises(DataError, match="zz_bad.png"):
        train_set[index]


def test_missing_root_is_an_error_naming_it(tmp_path, make_config):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere"):
        build_dataloaders(make_config(**{"data.root": missing}))
    assert not missing.exists()  # only the shipped default root gets sample data
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="train"):
        build_dataloaders(make_config(**{"data.root": tmp_path / "empty"}))


def test_no_images_is_an_error(tmp_path, make_config):
    root = tmp_path / "no_images"
    (root / "train" / "a").mkdir(parents=True)
    (root / "train" / "a" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="no images"):
        build_datasets(make_config(**{"data.root": root}))


def test_default_root_gets_the_sample_written(tmp_path, make_config, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    cfg = make_config(**{"data.root": SAMPLE_DATA_ROOT})
    with caplog.at_level(logging.INFO):
        train_loader, val_loader, info = build_dataloaders(cfg)
    root = tmp_path / SAMPLE_DATA_ROOT
    assert (root / "train").is_dir() and (root / "val").is_dir()
    assert info["classes"] == sorted(CLASSES)
    assert len(train_loader.dataset) > 0 and len(val_loader.dataset) > 0
    assert "sample" in caplog.text
    assert not list(tmp_path.glob("data/.*"))  # no temp folder left behind


def test_write_sample_is_reproducible(tmp_path):
    write_sample(tmp_path / "a", train_per_class=2, val_per_class=1, seed=3)
    write_sample(tmp_path / "b", train_per_class=2, val_per_class=1, seed=3)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.*"))
    assert files_a == files_b and len(files_a) == 3 * len(CLASSES)
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files_a)


def test_data_info_from_a_checkpoint_fixes_the_classes(tmp_path, make_config):
    root = tmp_path / "other"
    write_folder(root, "train", {"a": 2, "b": 2})
    write_folder(root, "val", {"a": 1, "b": 1})
    cfg = make_config(**{"data.root": root})
    _, _, trained = build_datasets(cfg)
    saved = {**trained, "classes": ["b", "a"], "mean": [0.1, 0.2, 0.3]}  # as a checkpoint was trained with
    _, val_set, info = build_datasets(cfg, saved)
    assert info["classes"] == ["b", "a"] and info["num_classes"] == 2
    assert info["mean"] == [0.1, 0.2, 0.3]  # the checkpoint's normalisation, not recomputed
    assert [(Path(p).parent.name, label) for p, label in val_set.samples] == [("b", 0), ("a", 1)]
    with pytest.raises(DataError, match="'c'"):
        build_datasets(cfg, {**saved, "classes": ["a", "b", "c"]})


def test_loader_with_worker_processes_gives_the_same_batches(make_config):
    _, val_serial, _ = build_dataloaders(make_config())
    _, val_workers, _ = build_dataloaders(make_config(**{"data.num_workers": 2}))
    serial, parallel = list(val_serial), list(val_workers)
    assert len(serial) == len(parallel)
    for (x0, y0), (x1, y1) in zip(serial, parallel, strict=True):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)


def test_hidden_files_and_macosx_folders_are_skipped_and_counted(data_root, tmp_path, make_config, caplog):
    """A folder unzipped from a Mac: AppleDouble `._*.png` files beside the images, `__MACOSX/` folders."""
    root = shutil.copytree(data_root, tmp_path / "from_a_mac")
    name = sorted(CLASSES)[0]
    for path in (
        root / "train" / name / f"._{name}_0000.png",
        root / "train" / name / "__MACOSX" / f"._{name}_0001.png",
        root / "train" / "__MACOSX" / name / f"._{name}_0002.png",  # not a class folder
        root / "val" / name / f"._{name}_0000.png",
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(APPLE_DOUBLE)
    with caplog.at_level(logging.INFO):
        train_loader, val_loader, info = build_dataloaders(make_config(**{"data.root": root}))
        assert sum(len(targets) for _, targets in train_loader) == 6 * len(CLASSES)  # reads every image
        assert sum(len(targets) for _, targets in val_loader) == 2 * len(CLASSES)
    assert info["classes"] == sorted(CLASSES)
    assert f"skipped 3 hidden file(s) in {root / 'train'}" in caplog.text
    assert f"skipped 1 hidden file(s) in {root / 'val'}" in caplog.text


def test_training_with_skip_corrupt_counts_the_skips_per_epoch(tmp_path, cli_overrides, capsys):
    root = write_sample(tmp_path / "data", train_per_class=6, val_per_class=2)
    bad = unreadable_files()
    for name, content in bad.items():
        (root / "train" / sorted(CLASSES)[0] / name).write_bytes(content)
    check_skip_corrupt_training(root, tmp_path, cli_overrides, capsys, len(bad))


def test_the_test_split_is_optional_and_changes_no_training(tmp_path, cli_overrides, data_root, capsys):
    check_optional_test_split(tmp_path, cli_overrides, data_root, capsys)


def test_a_test_class_train_lacks_stops_training_before_it_starts(tmp_path, cli_overrides, data_root, capsys):
    def add_class(root):
        write_folder(root, "test", {"hexagon": 1})
        return "hexagon"

    check_unknown_test_class_stops_training_before_it_starts(tmp_path, cli_overrides, data_root, capsys, add_class)
