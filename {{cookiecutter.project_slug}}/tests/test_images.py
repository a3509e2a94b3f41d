"""Image decoding shared by the image dataset types: modes, EXIF, corrupt files, augmentation, normalisation."""

import io
import logging

import pytest
import torch
{% if cookiecutter.dataset_type != "torchvision" %}
from conftest import write_tiny_sample
{% endif %}
from PIL import Image

{% if cookiecutter.dataset_type != "torchvision" %}
from {{ cookiecutter.package_name }}.data import build_dataloaders
{% endif %}
from {{ cookiecutter.package_name }}.data.common import DataError
from {{ cookiecutter.package_name }}.data.images import (
    ImageDataset,
    augment_batch,
    build_transforms,
    collate_skipping_none,
    compute_mean_std,
    decode_transform,
    open_image,
    to_mode,
)
{% if cookiecutter.dataset_type != "torchvision" %}
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.trainer import Trainer
{% endif %}

SIZE = 16  # FAST data.image_size


def save(path, image: Image.Image, **params):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **params)
    return path


@pytest.mark.parametrize(
    ("image", "rgb"),
    [
        (Image.new("L", (4, 4), 100), (100, 100, 100)),
        (Image.new("LA", (4, 4), (100, 0)), (255, 255, 255)),  # fully transparent: white
        (Image.new("LA", (4, 4), (100, 255)), (100, 100, 100)),
        (Image.new("RGBA", (4, 4), (10, 20, 30, 0)), (255, 255, 255)),
        (Image.new("RGBA", (4, 4), (10, 20, 30, 255)), (10, 20, 30)),
        (Image.new("I;16", (4, 4), 65535), (255, 255, 255)),  # 16-bit white stays white, scaled not clipped
        (Image.new("I;16", (4, 4), 257 * 40), (40, 40, 40)),
        (Image.new("I", (4, 4), 257 * 200), (200, 200, 200)),
        (Image.new("CMYK", (4, 4), (0, 255, 255, 0)), (255, 0, 0)),  # cyan 0, magenta+yellow full: red
        (Image.new("1", (4, 4), 1), (255, 255, 255)),
    ],
    ids=["L", "LA-clear", "LA-opaque", "RGBA-clear", "RGBA-opaque", "I16-white", "I16-grey", "I", "CMYK", "1"],
)
def test_every_mode_becomes_rgb_explicitly(image, rgb):
    converted = to_mode(image, "RGB")
    assert converted.mode == "RGB"
    assert converted.getpixel((1, 1)) == rgb
    assert to_mode(image, "L").mode == "L"


def test_palette_with_transparency_is_composited():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([200, 0, 0] + [0, 0, 0] * 255)
    image.info["transparency"] = 0
    assert to_mode(image, "RGB").getpixel((0, 0)) == (255, 255, 255)
    del image.info["transparency"]
    assert to_mode(image, "RGB").getpixel((0, 0)) == (200, 0, 0)


def test_exif_orientation_is_honoured(tmp_path):
    image = Image.new("RGB", (30, 10), (255, 0, 0))  # wide on disk
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the upright image is tall
    path = save(tmp_path / "rotated.jpg", image, exif=exif.tobytes())
    assert open_image(path).size == (10, 30)


@pytest.mark.parametrize("content", [b"not an image", b""], ids=["garbage", "empty"])
def test_unreadable_file_names_it(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(DataError, match="bad.png"):
        open_image(path)
    with pytest.raises(DataError, match="missing.png"):
        open_image(tmp_path / "missing.png")


def test_truncated_image_names_it(tmp_path):
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buffer, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(DataError, match="cut.jpg"):
        open_image(path)


def dataset_of(tmp_path, make_config, names, **settings):
    cfg = make_config(**settings)
    samples = []
    for i, name in enumerate(names):
        path = tmp_path / name
        if not path.exists():
            save(path, Image.new("RGB", (20, 12), (40 * i, 100, 200)))
        samples.append((str(path), i % 2))
    transform = build_transforms(cfg, [0.5] * 3, [0.25] * 3, train=False)
    return cfg, ImageDataset(samples, open_image, "RGB", transform, cfg.data.skip_corrupt)


def test_skip_corrupt_logs_drops_and_counts(tmp_path, make_config, caplog):
    (tmp_path / "broken.png").write_bytes(b"garbage")
    names = ["a.png", "broken.png", "b.png"]
    _, strict = dataset_of(tmp_path, make_config, names)
    with pytest.raises(DataError, match="broken.png"):
        strict[1]
    _, lenient = dataset_of(tmp_path, make_config, names, **{"data.skip_corrupt": True})
    with caplog.at_level(logging.WARNING):
        batch = collate_skipping_none([lenient[i] for i in range(3)])
    assert "broken.png" in caplog.text
    assert batch[0].shape == (2, 3, SIZE, SIZE) and batch[1].tolist() == [0, 0]
    assert lenient.take_skipped() == 1 and lenient.take_skipped() == 0  # counted once, then reset
    empty = collate_skipping_none([None, None])
    assert empty[0].numel() == 0 and empty[1].shape == (0,)


def test_skips_in_worker_processes_are_counted(tmp_path, make_config):
    (tmp_path / "broken.png").write_bytes(b"garbage")
    names = ["a.png", "broken.png", "b.png", "c.png", "broken.png"]
    _, dataset = dataset_of(tmp_path, make_config, names, **{"data.skip_corrupt": True})
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_skipping_none)
    assert sum(len(y) for _, y in loader) == 3
    assert dataset.take_skipped() == 2


{% if cookiecutter.dataset_type != "torchvision" %}
def add_unreadable_train_images(root) -> int:
    """Two garbage files and one truncated JPEG among the tiny sample's train images; returns how many."""
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buffer, "JPEG")
    contents = {"zz_bad_0.png": b"not an image", "zz_bad_1.png": b"", "zz_cut.jpg": buffer.getvalue()[:-400]}
{% if cookiecutter.dataset_type == "image_folder" %}
    folder = next(p for p in sorted((root / "train").iterdir()) if p.is_dir())
    for name, content in contents.items():
        (folder / name).write_bytes(content)
{% else %}
    label = (root / "train.txt").read_text(encoding="utf-8").splitlines()[0].rsplit(" ", 1)[1]  # a listed class
    with open(root / "train.txt", "a", encoding="utf-8") as file:
        for name, content in contents.items():
            (root / "images" / name).write_bytes(content)
            file.write(f"images/{name} {label}\n")
{% endif %}
    return len(contents)


def test_training_with_skip_corrupt_counts_the_skips_per_epoch(tmp_path, make_config, caplog):
    root = write_tiny_sample(tmp_path / "data")
    bad = add_unreadable_train_images(root)
    # mean/std computed from train (reads the bad files too, but must not add them to the epoch's count).
    cfg = make_config(**{"data.root": root, "data.skip_corrupt": True, "data.num_workers": 0})
    run_dir = tmp_path / "run"
    train_loader, val_loader, info = build_dataloaders(cfg)
    assert len(train_loader.dataset) == 24 + bad and not train_loader.drop_last  # every file is read once
    with caplog.at_level(logging.INFO):
        history = Trainer(cfg, build_model(cfg, info), train_loader, val_loader, info, run_dir, "cpu").fit()
    assert f"epoch 1: skipped {bad} unreadable train images" in caplog.text
    assert "unreadable val images" not in caplog.text
    assert len(history) == 1 and history[0]["epoch"] == 1
    assert (run_dir / "checkpoints" / "last.pt").is_file() and (run_dir / "metrics.csv").is_file()


{% endif %}
def test_decode_transform_gives_resized_uint8(tmp_path):
    image = Image.new("RGB", (40, 10), (1, 2, 3))
    x = decode_transform(SIZE)(image)
    assert x.dtype == torch.uint8 and x.shape == (3, SIZE, SIZE)
    assert x[:, 0, 0].tolist() == [1, 2, 3]


def test_computed_mean_std_match_the_pixels(tmp_path, make_config):
    cfg, dataset = dataset_of(tmp_path, make_config, ["a.png", "b.png"])
    mean, std = compute_mean_std(dataset, cfg, max_images=10)
    pixels = torch.stack([decode_transform(SIZE)(Image.open(tmp_path / n).convert("RGB")) for n in ["a.png", "b.png"]])
    pixels = pixels.double() / 255
    assert mean == pytest.approx(pixels.mean(dim=(0, 2, 3)).tolist(), abs=1e-4)
    expected_std = pixels.std(dim=(0, 2, 3), unbiased=False).clamp_min(1e-3)
    assert std == pytest.approx(expected_std.tolist(), abs=1e-4)


def halves(size=SIZE) -> torch.Tensor:
    """A uint8 batch of one image: left half 0, right half 255."""
    x = torch.zeros(1, 1, size, size, dtype=torch.uint8)
    x[..., size // 2 :] = 255
    return x


def test_batch_flip_is_per_sample(make_config):
    cfg = make_config(**{"data.random_resized_crop": False, "data.horizontal_flip": True})
    torch.manual_seed(0)
    out = augment_batch(halves().repeat(64, 1, 1, 1), cfg)
    flipped = out[:, 0, 0, 0] == 255
    assert 0 < int(flipped.sum()) < 64  # some flipped, some not: drawn per sample
    assert torch.equal(out[flipped], halves().float().flip(-1).expand(int(flipped.sum()), -1, -1, -1))


def test_batch_crop_is_per_sample_and_keeps_the_size(make_config):
    crop_only = {"data.random_resized_crop": True, "data.crop_scale": [0.2, 0.5], "data.horizontal_flip": False}
    cfg = make_config(**crop_only)
    torch.manual_seed(0)
    x = torch.arange(SIZE * SIZE, dtype=torch.uint8).view(1, 1, SIZE, SIZE).repeat(8, 3, 1, 1)
    out = augment_batch(x, cfg)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert len({tuple(sample.flatten().tolist()) for sample in out}) == 8  # a different crop for each
    assert float(out.min()) >= 0 and float(out.max()) <= 255


def test_no_augmentation_is_identity(make_config):
    cfg = make_config(**{"data.random_resized_crop": False, "data.horizontal_flip": False})
    x = torch.randint(0, 256, (4, 3, SIZE, SIZE), dtype=torch.uint8)
    assert torch.equal(augment_batch(x, cfg), x.float())
