"""Image-list data: .txt and .csv lists, labels and classes, val split, lazy reading and clear errors."""

import logging
import os
import re
import shutil
from pathlib import Path

import pytest
import test_images
import torch
from PIL import Image
from test_images import APPLE_DOUBLE, check_skip_corrupt_training, unreadable_files
from test_images import cli_bad_predict_input as cli_bad_predict_input  # run by test_predict.py
from test_report import (
    check_optional_test_split,
    check_unknown_test_class_stops_training_before_it_starts,
)

from {{ cookiecutter.package_name }}.data import DataError, build_dataloaders, build_datasets, take_skipped
from {{ cookiecutter.package_name }}.data.common import SAMPLE_DATA_ROOT
from {{ cookiecutter.package_name }}.data.dataset import read_list
from {{ cookiecutter.package_name }}.data.sample import CLASSES, write_sample

SIZE = 16  # FAST data.image_size
# Fixed normalisation: building the datasets then reads no image at all (lists are read lazily).
STATS = {"data.mean": [0.5, 0.5, 0.5], "data.std": [0.25, 0.25, 0.25]}


def save_image(path: Path, color=(200, 100, 50), size=(6, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def write_list(root: Path, name: str, lines, encoding="utf-8") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_text("".join(f"{line}\n" for line in lines), encoding=encoding)
    return path


def write_labelled(root: Path, name: str, labels) -> list[str]:
    """One small image per label under root/img/ and a .txt list naming them; returns the paths."""
    paths = [f"img/{Path(name).stem}_{i:03d}.png" for i in range(len(labels))]
    for i, path in enumerate(paths):
        save_image(root / path, color=(10 * i, 20, 30))
    write_list(root, name, [f"{path} {label}" for path, label in zip(paths, labels, strict=True)])
    return paths


def val_inputs(data_root: Path, val_set, tmp_path: Path) -> tuple[list[str], list[str]]:
    """(predict.py inputs, the `input` name predict.py gives each val sample, in val order): val.txt itself."""
    return [str(data_root / "val.txt")], [str(Path(path)) for path, _ in val_set.samples]


def mixed_predict_inputs(data_root: Path, names: list[str], tmp_path: Path):
    """The image types' inputs, then a .txt and a .csv list of them (paths relative to the list; labels ignored)."""
    inputs, expected, same = test_images.mixed_predict_inputs(data_root, names, tmp_path)
    lists = tmp_path / "lists"
    lists.mkdir()
    relative = os.path.relpath(inputs[1], lists)  # the file with a space in its name
    # A bare path, a comment, a blank line, `path label` lines (the label is ignored), a hidden file.
    (lists / "todo.txt").write_text(f"# to classify\n{relative}\n\n{names[0]} some_label\n{relative} 3\n._x.png\n")
    (lists / "todo.csv").write_text(f'label,path\ncat,"{relative}"\n')
    listed = str(lists / relative)
    inputs += [str(lists / "todo.txt"), str(lists / "todo.csv")]
    return inputs, [*expected, listed, names[0], listed, listed], [*same, (listed, inputs[1])]


def bad_predict_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    """The image types' bad inputs, and a list naming a missing image."""
    listing = tmp_path / "list.txt"
    listing.write_text("# header\nnowhere.png cat\n")
    return [*test_images.bad_predict_inputs(tmp_path), ([str(listing)], re.escape(f"{listing} line 2: no image file"))]


def test_sample_data_layout_and_batches(data_root, make_config):
    images = list((data_root / "images").iterdir())
    assert all(p.is_file() for p in images)  # one flat folder
    assert {p.suffix for p in images} == {".png", ".jpg"}
    modes = set()
    for p in images:
        with Image.open(p) as image:
            modes.add(image.mode)
    assert len(modes) >= 4  # RGB, L, P, RGBA, 16-bit, ...
    train, val = read_list(data_root / "train.txt"), read_list(data_root / "val.txt")
    assert len(train) == 6 * len(CLASSES) and len(val) == 2 * len(CLASSES)
    assert sorted({label for _, label in train}) == sorted(CLASSES)
    assert any(" " in path for path, _ in train)
    assert len(images) == len(train) + len(val)

    cfg = make_config()
    train_loader, val_loader, info = build_dataloaders(cfg)
    assert info["classes"] == sorted(CLASSES)
    assert info["num_classes"] == len(CLASSES)
    assert info["in_channels"] == 3
    inputs, targets = next(iter(train_loader))
    assert inputs.shape == (cfg.data.batch_size, 3, SIZE, SIZE)
    assert inputs.dtype == torch.float32
    assert targets.dtype == torch.int64
    assert targets.shape == (cfg.data.batch_size,)
    assert int(targets.min()) >= 0 and int(targets.max()) < len(CLASSES)
    batches = list(val_loader)  # every mode and size decodes to the same shape
    assert sum(len(t) for _, t in batches) == len(val)
    assert all(x.shape[1:] == (3, SIZE, SIZE) and torch.isfinite(x).all() for x, _ in batches)


def test_labels_follow_the_list(data_root, make_config):
    train_set, val_set, info = build_datasets(make_config())
    for dataset, name in ((train_set, "train.txt"), (val_set, "val.txt")):
        listed = read_list(data_root / name)
        assert dataset.samples == [(str(data_root / p), info["classes"].index(label)) for p, label in listed]
        _, label = dataset[0]
        assert isinstance(label, int)


@pytest.mark.parametrize(
    ("labels", "classes"),
    [
        (["10", "2", "1", "2", "10"], ["1", "2", "10"]),  # integers: numerically, not "1", "10", "2"
        (["zebra", "cat", "Ant", "cat"], ["Ant", "cat", "zebra"]),  # names: alphabetically
        (["10", "b", "2"], ["10", "2", "b"]),  # not all integers: alphabetically
    ],
)
def test_classes_are_sorted_naturally(tmp_path, make_config, labels, classes):
    write_list(tmp_path, "train.txt", [f"x{i}.png {label}" for i, label in enumerate(labels)])
    write_list(tmp_path, "val.txt", [f"v.png {labels[0]}"])
    train_set, val_set, info = build_datasets(make_config(**{"data.root": tmp_path, **STATS}))
    assert info["classes"] == classes and info["num_classes"] == len(classes)
    assert [label for _, label in train_set.samples] == [classes.index(label) for label in labels]
    assert val_set.samples == [(str(tmp_path / "v.png"), classes.index(labels[0]))]


def test_csv_lists_with_a_header_and_quoted_paths(tmp_path, make_config):
    for path in ("pics/a, b.png", "pics/with space.png", "pics/c.png", "pics/v.png"):
        save_image(tmp_path / path)
    # A byte-order mark (Excel's "CSV UTF-8") and extra columns are fine.
    train_rows = [
        "id,label,path,notes",
        '1,cat,"pics/a, b.png",first',
        "2,dog,pics/with space.png,",
        "3,cat,pics/c.png,x",
    ]
    write_list(tmp_path, "train.csv", train_rows, encoding="utf-8-sig")
    write_list(tmp_path, "val.csv", ["path,label", "pics/v.png,dog"])
    cfg = make_config(**{"data.root": tmp_path, "data.train_list": "train.csv", "data.val_list": "val.csv"})
    train_set, val_set, info = build_datasets(cfg)
    assert info["classes"] == ["cat", "dog"]
    assert train_set.samples == [
        (str(tmp_path / "pics/a, b.png"), 0),
        (str(tmp_path / "pics/with space.png"), 1),
        (str(tmp_path / "pics/c.png"), 0),
    ]
    assert val_set.samples == [(str(tmp_path / "pics/v.png"), 1)]
    assert train_set[0][0].shape == (3, SIZE, SIZE)


def test_txt_paths_with_spaces_comments_blank_lines_and_absolute_paths(tmp_path, make_config):
    root = tmp_path / "data"
    outside = save_image(tmp_path / "elsewhere" / "abs image.png")
    save_image(root / "my photos" / "cat 1.png")
    save_image(root / "dog.png")
    lines = ["# path label", "", "   ", "my photos/cat 1.png   cat", "dog.png\tdog", f"  {outside} dog  ", "# the end"]
    (root / "train.txt").write_bytes("\r\n".join(lines).encode())  # Windows line endings too
    assert read_list(root / "train.txt") == [("my photos/cat 1.png", "cat"), ("dog.png", "dog"), (str(outside), "dog")]
    write_list(root, "val.txt", ["dog.png dog"])
    train_set, _, _ = build_datasets(make_config(**{"data.root": root}))
    expected = [str(root / "my photos/cat 1.png"), str(root / "dog.png"), str(outside)]
    assert [path for path, _ in train_set.samples] == expected
    assert all(train_set[i][0].shape == (3, SIZE, SIZE) for i in range(3))


@pytest.mark.parametrize(
    ("name", "lines", "match"),
    [
        ("train.txt", ["a.png cat", "# note", "no_label.png", "b.png dog"], r"train\.txt line 3: 'no_label\.png'"),
        ("train.csv", ["path,label", "a.png,cat", "b.png,"], r"train\.csv line 3: 'b\.png,'"),
        ("train.csv", ["file,class", "a.png,cat"], r"found columns \['file', 'class'\]"),
        ("train.txt", ["# nothing but comments", ""], r"train\.txt lists no images"),
        ("train.csv", ["path,label"], r"train\.csv lists no images"),
    ],
)
def test_malformed_lists_name_the_file_and_line(tmp_path, make_config, name, lines, match):
    write_list(tmp_path, name, lines)
    with pytest.raises(DataError, match=match) as err:
        build_datasets(make_config(**{"data.root": tmp_path, "data.train_list": name, **STATS}))
    assert str(tmp_path) in str(err.value)
    if "line" in match and name.endswith(".txt"):
        assert "relative/path label" in str(err.value)  # says what a line should look like


def test_missing_image_names_its_path_when_read_or_is_skipped(tmp_path, make_config):
    write_labelled(tmp_path, "val.txt", ["a"])
    save_image(tmp_path / "ok.png")
    write_list(tmp_path, "train.txt", ["ok.png a", "gone/missing.png a", "ok.png a"])
    train_set, _, _ = build_datasets(make_config(**{"data.root": tmp_path, **STATS}))  # lazy: nothing opened yet
    assert train_set[0][0].shape == (3, SIZE, SIZE)
    with pytest.raises(DataError, match=r"gone[/\\]missing\.png"):
        train_set[1]

    cfg = make_config(**{"data.root": tmp_path, "data.skip_corrupt": True, **STATS})
    train_loader, _, _ = build_dataloaders(cfg)
    assert train_loader.dataset[1] is None
    assert train_loader.dataset.take_skipped() == 1
    assert sum(len(targets) for _, targets in train_loader) == 2
    assert take_skipped(train_loader) == 1  # counted once per pass, then reset
    assert take_skipped(train_loader) == 0


def test_normalisation_is_computed_from_train_images_only(tmp_path, make_config):
    root = tmp_path / "two_colours"
    train_colour, val_colour = (200, 100, 50), (0, 40, 250)  # very different: a mix would show
    for i in range(3):
        save_image(root / "img" / f"train_{i}.png", color=train_colour, size=(20 + i, 12))
    save_image(root / "img" / "val_0.png", color=val_colour)
    write_list(root, "train.txt", [f"img/train_{i}.png {'ab'[i % 2]}" for i in range(3)])
    write_list(root, "val.txt", ["img/val_0.png a"])
    _, val_set, info = build_datasets(make_config(**{"data.root": root, "data.mean": [], "data.std": []}))
    assert info["mean"] == pytest.approx([c / 255 for c in train_colour], abs=1e-3)
    assert info["std"] == pytest.approx([1e-3] * 3)  # one flat colour: the floor, not val's spread
    x = val_set[0][0] * torch.tensor(info["std"]).view(-1, 1, 1) + torch.tensor(info["mean"]).view(-1, 1, 1)
    assert torch.allclose(x[:, 0, 0], torch.tensor(val_colour) / 255, atol=1e-3)  # normalised with train's stats


def test_unknown_val_label_is_an_error(tmp_path, make_config):
    write_labelled(tmp_path, "train.txt", ["a", "b", "a"])
    write_list(tmp_path, "val.txt", ["x.png a", "y.png c"])
    with pytest.raises(DataError, match=r"val\.txt line 2: label 'c' .*\['a', 'b'\]"):
        build_datasets(make_config(**{"data.root": tmp_path, **STATS}))


def test_missing_train_list_is_an_error(tmp_path, make_config):
    with pytest.raises(DataError, match=r"train\.txt does not exist.*data\.train_list") as err:
        build_dataloaders(make_config(**{"data.root": tmp_path}))
    assert "<root>/<data.train_list>" in str(err.value)  # shows the expected layout
    write_labelled(tmp_path, "train.txt", ["a", "b"])
    with pytest.raises(DataError, match=r"mine\.csv does not exist"):
        build_datasets(make_config(**{"data.root": tmp_path, "data.train_list": "mine.csv"}))
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere"):
        build_dataloaders(make_config(**{"data.root": missing}))
    assert not missing.exists()  # only the shipped default root gets sample data


def test_no_val_list_holds_out_a_seeded_disjoint_split(tmp_path, make_config):
    paths = write_labelled(tmp_path, "train.txt", ["a", "b"] * 10)

    def split(seed, fraction=0.25, **settings):
        cfg = make_config(**{"data.root": tmp_path, "seed": seed, "data.val_fraction": fraction, **STATS, **settings})
        train_set, val_set, info = build_datasets(cfg)
        assert info["classes"] == ["a", "b"]
        return [p for p, _ in train_set.samples], [p for p, _ in val_set.samples]

    train, val = split(seed=1)
    assert len(val) == 5 and len(train) == 15
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(str(tmp_path / p) for p in paths)
    assert split(seed=1) == (train, val)  # the same seed gives the same split
    assert split(seed=2)[1] != val
    assert len(split(seed=1, fraction=0.5)[1]) == 10
    assert split(seed=1, **{"data.val_list": "missing.txt"}) == (train, val)


def test_data_info_from_a_checkpoint_fixes_the_classes(tmp_path, make_config):
    write_labelled(tmp_path, "train.txt", ["a", "b", "a", "b"])
    write_labelled(tmp_path, "val.txt", ["b", "a"])
    cfg = make_config(**{"data.root": tmp_path})
    _, _, info = build_datasets(cfg)
    saved = {**info, "classes": ["b", "a"], "mean": [0.1, 0.2, 0.3]}  # the order the checkpoint was trained with
    train_set, val_set, reused = build_datasets(cfg, saved)
    assert reused["classes"] == ["b", "a"] and reused["num_classes"] == 2
    assert reused["mean"] == [0.1, 0.2, 0.3]  # normalisation from the checkpoint, not recomputed
    assert [label for _, label in val_set.samples] == [0, 1]
    assert [label for _, label in train_set.samples] == [1, 0, 1, 0]
    with pytest.raises(DataError, match=r"train\.txt line 2: label 'b' .*known classes \['a'\]"):
        build_datasets(cfg, {**info, "classes": ["a"]})


def test_write_sample_is_reproducible(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_sample(tmp_path / name, train_per_class=2, val_per_class=1, seed=seed)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 3 * len(CLASSES) + 2  # the images, train.txt and val.txt
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert any((tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes() for f in files)


def test_default_root_gets_the_sample_written(tmp_path, make_config, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    cfg = make_config(**{"data.root": SAMPLE_DATA_ROOT, **STATS})
    with caplog.at_level(logging.INFO):
        train_loader, val_loader, info = build_dataloaders(cfg)
    root = tmp_path / SAMPLE_DATA_ROOT
    assert (root / "train.txt").is_file() and (root / "val.txt").is_file() and (root / "images").is_dir()
    assert info["classes"] == sorted(CLASSES)
    assert len(train_loader.dataset) > 0 and len(val_loader.dataset) > 0
    assert "sample" in caplog.text
    assert not list(tmp_path.glob("data/.*"))  # no temp folder left behind


def test_hidden_files_and_macosx_paths_are_skipped_and_counted(data_root, tmp_path, make_config, caplog):
    """A list made with `find` in a folder unzipped from a Mac names AppleDouble files and `__MACOSX/` paths."""
    root = shutil.copytree(data_root, tmp_path / "from_a_mac")
    hidden = ["images/._img_00000.png", "__MACOSX/images/._img_00001.png"]
    for path in hidden:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(APPLE_DOUBLE)
    with open(root / "train.txt", "a", encoding="utf-8") as file:
        file.writelines(f"{path} {CLASSES[0]}\n" for path in hidden)
    with caplog.at_level(logging.INFO):
        train_loader, _, info = build_dataloaders(make_config(**{"data.root": root}))
        assert sum(len(targets) for _, targets in train_loader) == 6 * len(CLASSES)  # reads every image
    assert info["classes"] == sorted(CLASSES)
    assert f"skipped 2 hidden file(s) in {root / 'train.txt'}" in caplog.text


def test_training_with_skip_corrupt_counts_the_skips_per_epoch(tmp_path, cli_overrides, capsys):
    root = write_sample(tmp_path / "data", train_per_class=6, val_per_class=2)
    bad = unreadable_files()
    with open(root / "train.txt", "a", encoding="utf-8") as file:
        for name, content in bad.items():
            (root / "images" / name).write_bytes(content)
            file.write(f"images/{name} {CLASSES[0]}\n")
    check_skip_corrupt_training(root, tmp_path, cli_overrides, capsys, len(bad))


def test_the_test_split_is_optional_and_changes_no_training(tmp_path, cli_overrides, data_root, capsys):
    check_optional_test_split(tmp_path, cli_overrides, data_root, capsys)


def test_a_test_label_train_lacks_stops_training_before_it_starts(tmp_path, cli_overrides, data_root, capsys):
    def add_class(root):
        last = (root / "test.txt").read_text(encoding="utf-8").splitlines()[-1]
        (root / "test.txt").write_text(f"{last.rsplit(None, 1)[0]} hexagon\n", encoding="utf-8")
        return "hexagon"

    check_unknown_test_class_stops_training_before_it_starts(tmp_path, cli_overrides, data_root, capsys, add_class)
