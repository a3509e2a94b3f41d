"""Image decoding and augmentation shared by the image dataset types: modes, EXIF, corrupt and hidden files,
the per-image and batched augmentation twins, normalisation; and the image inputs of predict.py."""

import io
import logging
import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from torchvision.transforms import v2

import train
from {{ cookiecutter.package_name }}.data import augment as augment_module
from {{ cookiecutter.package_name }}.data.augment import (
    Augmentation,
    BatchTransform,
    Normalize255,
    augment_batch,
    build_transforms,
    decode_transform,
    resize_boxes,
    sample_boxes,
)
from {{ cookiecutter.package_name }}.data.images import (
    IMAGE_EXTENSIONS,
    ImageDataset,
    compute_mean_std,
    eval_dataset,
    image_datasets,
    is_hidden,
    open_image,
    preload_split,
    skip_hidden,
    to_mode,
)
from {{ cookiecutter.package_name }}.errors import DataError
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.models.torchvision_models import pretrained_weights
from {{ cookiecutter.package_name }}.report import evaluate_split

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
    transform = build_transforms(SIZE, [0.5] * 3, [0.25] * 3)
    return cfg, ImageDataset(samples, open_image, "RGB", SIZE, transform, cfg.data.skip_corrupt)


def test_skip_corrupt_logs_drops_and_counts(tmp_path, make_config, caplog):
    (tmp_path / "broken.png").write_bytes(b"garbage")
    names = ["a.png", "broken.png", "b.png"]
    _, strict = dataset_of(tmp_path, make_config, names)
    with pytest.raises(DataError, match="broken.png"):
        strict[1]
    _, lenient = dataset_of(tmp_path, make_config, names, **{"data.skip_corrupt": True})
    with caplog.at_level(logging.WARNING):
        batch = lenient.collate_fn([lenient[i] for i in range(3)])
    assert "broken.png" in caplog.text
    assert batch[0].shape == (2, 3, SIZE, SIZE) and batch[1].tolist() == [0, 0]
    assert lenient.take_skipped() == 1 and lenient.take_skipped() == 0  # counted once, then reset
    inputs, targets = lenient.collate_fn([None, None])  # all skipped: empty, but shaped like a real batch
    assert inputs.shape == (0, 3, SIZE, SIZE) and inputs.dtype == torch.float32
    assert targets.shape == (0,) and targets.dtype == torch.int64


def test_reports_leave_unreadable_images_out_and_say_how_many(tmp_path, make_config, caplog):
    (tmp_path / "broken.png").write_bytes(b"garbage")
    cfg, dataset = dataset_of(tmp_path, make_config, ["a.png", "broken.png", "b.png"], **{"data.skip_corrupt": True})
    model = build_model(cfg, {"num_outputs": 2, "in_channels": 3, "image_size": SIZE})
    with caplog.at_level(logging.WARNING):
        criterion = torch.nn.CrossEntropyLoss()
        report = evaluate_split(model, criterion, dataset, {"classes": ["x", "y"]}, cfg, torch.device("cpu"), None)
    assert report["num_samples"] == 2 and report["per_class"]["y"]["support"] == 0
    assert "skipped 1 unreadable images" in caplog.text


@pytest.mark.parametrize("start", ["fork", "forkserver"])  # forkserver, the default from Python 3.14, pickles it
def test_skips_in_worker_processes_are_counted(tmp_path, make_config, start):
    (tmp_path / "broken.png").write_bytes(b"garbage")
    names = ["a.png", "broken.png", "b.png", "c.png", "broken.png"]
    _, dataset = dataset_of(tmp_path, make_config, names, **{"data.skip_corrupt": True})
    workers = 2 if start == "fork" else 1  # one forkserver worker shows the pickled counter works
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=2, num_workers=workers, collate_fn=dataset.collate_fn, multiprocessing_context=start
    )
    assert sum(len(y) for _, y in loader) == 3
    assert dataset.take_skipped() == 2


def photo(width: int, height: int) -> Image.Image:
    """A smooth, photo-like picture with edges: gradients and discs."""
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    channels = [torch.sin(x * 7 + c) * torch.cos(y * 5 - c) * 100 + 128 for c in range(3)]
    image = Image.fromarray(torch.stack(channels, -1).to(torch.uint8).numpy())
    draw = ImageDraw.Draw(image)
    for i in range(6):
        left, top = width * i // 7, height * (i % 3) // 4
        draw.ellipse([left, top, left + width // 5, top + height // 3], fill=(40 * i, 255 - 40 * i, 90))
    return image


@pytest.mark.parametrize("exif_rotated", [False, True])
def test_jpegs_decode_at_the_scale_the_size_needs_and_look_the_same(tmp_path, exif_rotated):
    exif = Image.Exif()
    exif[0x0112] = 6 if exif_rotated else 1  # 6: "rotate 90 CW to display"
    path = save(tmp_path / "photo.jpg", photo(1200, 900), quality=90, exif=exif.tobytes())
    full = open_image(path)
    assert full.size == ((900, 1200) if exif_rotated else (1200, 900))
    quarter, eighth = (-(-side // 4) for side in full.size), (-(-side // 8) for side in full.size)
    assert open_image(path, size=120).size == tuple(quarter)  # 1/8 would leave 113 < 120 pixels
    assert open_image(path, size=100).size == tuple(eighth)
    for size in (64, 100):
        x_full = decode_transform(size)(full).float()
        x_drafted = decode_transform(size)(open_image(path, size=size)).float()
        assert (x_full - x_drafted).abs().mean() < 1.5, size  # resampling noise, out of 255
    assert open_image(path, size=1000).size == full.size  # never below the size asked for


def test_other_formats_decode_fully(tmp_path):
    path = save(tmp_path / "photo.png", photo(400, 300))
    assert open_image(path, size=50).size == (400, 300)


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


def transform_batch(transform: BatchTransform, images: torch.Tensor) -> torch.Tensor:
    """The images of `transform(images, labels)` (labels are passed through unmixed)."""
    return transform(images, torch.zeros(len(images), dtype=torch.int64))[0]


def halves(size=SIZE) -> torch.Tensor:
    """A uint8 batch of one image: left half 0, right half 255."""
    x = torch.zeros(1, 1, size, size, dtype=torch.uint8)
    x[..., size // 2 :] = 255
    return x


def test_augmentation_is_read_from_the_config(make_config):
    crop = {"data.random_resized_crop": True, "data.crop_scale": [0.2, 0.5], "data.horizontal_flip": False}
    assert Augmentation.from_config(make_config(**crop)) == Augmentation(crop_scale=(0.2, 0.5), flip=False)
    plain = {"data.random_resized_crop": False, "data.horizontal_flip": True, "data.random_erasing": 0.25}
    assert Augmentation.from_config(make_config(**plain)) == Augmentation(crop_scale=None, flip=True, erasing=0.25)


def erased_boxes(batch: torch.Tensor) -> list[tuple[int, int] | None]:
    """Per image of a batch of ones: (area, bounding-box area) of its zeros, None without any."""
    boxes = []
    for image in batch:
        zeros = (image == 0).all(0).nonzero()
        if not len(zeros):
            boxes.append(None)
            continue
        (top, left), (bottom, right) = zeros.min(0).values, zeros.max(0).values
        boxes.append((len(zeros), int((bottom - top + 1) * (right - left + 1))))
    return boxes


def test_random_erasing_blanks_one_rectangle_per_image_in_both_twins():
    torch.manual_seed(0)
    ones = torch.full((64, 3, SIZE, SIZE), 255, dtype=torch.uint8)  # normalised with mean 0, std 1: all ones
    batched = transform_batch(BatchTransform([0.0] * 3, [1 / 255] * 3, Augmentation(erasing=1.0)), ones) / 255
    per_image = build_transforms(SIZE, [0.0] * 3, [1.0] * 3, Augmentation(erasing=1.0))
    single = torch.stack([per_image(Image.new("RGB", (SIZE, SIZE), (255, 255, 255))) for _ in range(64)])
    for boxes in (erased_boxes(batched), erased_boxes(single)):
        assert all(box is not None and box[0] == box[1] for box in boxes)  # every image: one solid rectangle
        shares = [area / SIZE**2 for area, _ in boxes]
        assert min(shares) >= 0.01 and max(shares) <= 0.4 and len(set(shares)) > 5  # 2-33% give or take rounding
    half = transform_batch(BatchTransform([0.0] * 3, [1 / 255] * 3, Augmentation(erasing=0.5)), ones)
    assert 10 < sum(box is not None for box in erased_boxes(half)) < 54  # drawn per image
    off = transform_batch(BatchTransform([0.0] * 3, [1 / 255] * 3, Augmentation()), ones)
    assert torch.equal(off, ones.float())


def test_batch_flip_is_per_sample():
    torch.manual_seed(0)
    out = augment_batch(halves().repeat(64, 1, 1, 1), Augmentation(flip=True), SIZE)
    flipped = out[:, 0, 0, 0] == 255
    assert 0 < int(flipped.sum()) < 64  # some flipped, some not: drawn per sample
    assert torch.equal(out[flipped], halves().float().flip(-1).expand(int(flipped.sum()), -1, -1, -1))


def test_batch_crop_is_per_sample_and_keeps_the_size():
    torch.manual_seed(0)
    x = torch.arange(SIZE * SIZE, dtype=torch.uint8).view(1, 1, SIZE, SIZE).repeat(8, 3, 1, 1)
    out = augment_batch(x, Augmentation(crop_scale=(0.2, 0.5)), SIZE)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert len({tuple(sample.flatten().tolist()) for sample in out}) == 8  # a different crop for each
    assert float(out.min()) >= 0 and float(out.max()) <= 255


def test_the_cpu_and_the_one_kernel_resampling_agree_on_whole_pixel_boxes():
    # resize_boxes (the CPU's: one interpolate per image) and sample_boxes (accelerators': one grid_sample) read the
    # same positions; at a 2x zoom only the outermost output pixels differ (grid_sample's border reaches 1/4 pixel
    # outside the box), and a full box is the image itself in both.
    torch.manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 32, 32)).float()
    left, top = torch.tensor([0.0, 0.25, 0.5, 0.125]), torch.tensor([0.5, 0.0, 0.25, 0.375])
    half, flip = torch.full((4,), 0.5), torch.tensor([False, True, False, True])
    cpu, kernel = resize_boxes(x, left, top, half, half, flip, 32), sample_boxes(x, left, top, half, half, flip, 32)
    assert torch.allclose(cpu[..., 1:-1, 1:-1], kernel[..., 1:-1, 1:-1], atol=1e-4)
    full, zero, itself = torch.ones(4), torch.zeros(4), torch.where(flip.view(4, 1, 1, 1), x.flip(-1), x)
    for resample in (resize_boxes, sample_boxes):
        assert torch.allclose(resample(x, zero, zero, full, full, flip, 32), itself)


@pytest.mark.parametrize(("size", "resampling"), [(95, "sample_boxes"), (96, "resize_boxes")])
def test_the_cpu_crops_large_images_one_by_one_and_small_ones_in_one_kernel(monkeypatch, size, resampling):
    used = []
    for name in ("resize_boxes", "sample_boxes"):
        monkeypatch.setattr(augment_module, name, lambda x, *boxes, name=name: used.append(name) or x)
    augment_batch(torch.zeros(2, 3, size, size, dtype=torch.uint8), Augmentation(crop_scale=(0.5, 1.0)), size)
    assert used == [resampling]


def test_normalize255_is_todtype_and_normalize_in_one_pass():
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    reference = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=mean, std=std)])
    image = Image.fromarray(torch.randint(0, 256, (SIZE, SIZE, 3), dtype=torch.uint8).numpy())
    pixels = decode_transform(SIZE)(image)  # PILToTensor: a channels-last view
    assert not pixels.is_contiguous()
    out = Normalize255(mean, std)(pixels)
    assert out.dtype == torch.float32 and out.is_contiguous()
    assert torch.allclose(out, reference(pixels), atol=1e-5)
    batch = pixels.repeat(3, 1, 1, 1)  # the batched twin normalises whole batches with it
    assert torch.allclose(Normalize255(mean, std)(batch), reference(batch), atol=1e-5)


@pytest.mark.parametrize(
    "augment",
    [Augmentation(), Augmentation(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0)), Augmentation(flip=True)],
    ids=["none", "full-crop", "flip"],
)
def test_the_per_image_and_batched_twins_agree(augment):
    """Both implementations give the same image for each draw they can make (flip: either view; none: itself)."""
    torch.manual_seed(0)
    image = Image.fromarray(torch.randint(0, 256, (SIZE, SIZE, 3), dtype=torch.uint8).numpy())
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    plain = build_transforms(SIZE, mean, std)(image)
    views = [plain, plain.flip(-1)] if augment.flip else [plain]
    per_image = [build_transforms(SIZE, mean, std, augment)(image) for _ in range(16)]
    batch = decode_transform(SIZE)(image).repeat(16, 1, 1, 1)
    batched = list(transform_batch(BatchTransform(mean, std, augment), batch))
    for outputs in (per_image, batched):
        drawn = {next(i for i, view in enumerate(views) if torch.allclose(x, view, atol=1e-4)) for x in outputs}
        assert drawn == set(range(len(views)))  # only these views, and each of them


# ---- pretrained weights see what torchvision's presets gave them; own models see the image squashed ----------
def noise_image(path, height: int, width: int, seed: int = 0):
    """A PNG of random pixels: every resampling difference shows."""
    noise = torch.randint(0, 256, (height, width, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return save(path, Image.fromarray(noise.numpy()))


# resnet18: bilinear, 256 -> 224; efficientnet_b0: bicubic, 256 -> 224; efficientnet_b1: bilinear, 255 -> 240
@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0", "efficientnet_b1"])
def test_pretrained_validation_is_the_weights_own_transforms_tensor_for_tensor(tmp_path, make_config, name):
    path = noise_image(tmp_path / "wide.png", 300, 460)
    cfg = make_config(**{"model.name": name, "model.pretrained": True, "data.image_size": 0})
    _, val_set, info = image_datasets(cfg, [(str(path), 0)], [(str(path), 0)], ["a"], mode="RGB")
    expected = pretrained_weights(name).transforms()(Image.open(path).convert("RGB"))
    assert val_set[0][0].shape == expected.shape
    torch.testing.assert_close(val_set[0][0], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(eval_dataset(cfg, [(str(path), 0)], info)[0][0], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("pretrained", "colours"), [(True, {1}), (False, {0, 1, 2})])
def test_pretrained_training_crops_the_decoded_image_own_models_the_squashed_square(
    tmp_path, make_config, pretrained, colours
):
    """A 4:1 image, red | green green | blue. RandomResizedCrop keeping the whole area at a ratio of at most 4/3:
    from the decoded image that is its centre (green only); from the squashed square, all of it."""
    image = Image.new("RGB", (400, 100), (0, 255, 0))
    image.paste((255, 0, 0), (0, 0, 100, 100))
    image.paste((0, 0, 255), (300, 0, 400, 100))
    path = save(tmp_path / "wide.png", image)
    crop = {"data.random_resized_crop": True, "data.crop_scale": [1.0, 1.0], "data.horizontal_flip": False}
    overrides = {"model.name": "resnet18", "model.pretrained": pretrained, "data.image_size": 32, **crop}
    samples = [(str(path), 0)]
    train_set, _, info = image_datasets(make_config(**overrides), samples, samples, ["a"], mode="RGB")
    x = train_set[0][0] * torch.tensor(info["std"]).view(3, 1, 1) + torch.tensor(info["mean"]).view(3, 1, 1)
    shares = torch.bincount(x.argmax(0).flatten(), minlength=3) / x[0].numel()
    assert x.shape == (3, 32, 32) and {c for c in range(3) if shares[c] > 0.1} == colours


def test_pretrained_preload_stores_the_centre_square_at_a_margin_and_validates_as_lazily(tmp_path, make_config):
    paths = [noise_image(tmp_path / f"{i}.png", 40 + 10 * i, 70 - 5 * i, seed=i) for i in range(4)]  # not square
    samples = [(str(path), i % 2) for i, path in enumerate(paths)]
    cfg = make_config(**{"model.name": "resnet18", "model.pretrained": True, "data.image_size": 32})
    train_set, val_set, info = image_datasets(cfg, samples, samples, ["a", "b"], mode="RGB")
    assert (info["resize_size"], info["interpolation"]) == (36, "bilinear")  # 256 / 224 of the crop
    inputs, targets, transform = preload_split(val_set, cfg, torch.device("cpu"), "val")
    assert inputs.shape == (4, 3, 36, 36) and inputs.dtype == torch.uint8
    expected = torch.stack([val_set[i][0] for i in range(4)])
    torch.testing.assert_close(transform(inputs, targets)[0], expected, atol=1e-5, rtol=1e-5)
    inputs, targets, transform = preload_split(train_set, cfg, torch.device("cpu"), "train")
    assert transform(inputs, targets)[0].shape == (4, 3, 32, 32)


@pytest.mark.parametrize(
    ("path", "within", "hidden"),
    [
        ("data/train/cat/._photo.png", None, True),
        ("__MACOSX/train/cat/photo.png", None, True),
        ("data/train/cat/photo.png", None, False),
        ("./images/photo.png", None, False),
        ("/home/me/.cache/images/photo.png", None, False),  # a listed path: only its own name counts
        ("train/cat/.ipynb_checkpoints/photo.png", "train", True),  # found in a folder: hidden folders count
    ],
)
def test_hidden_files(path, within, hidden, caplog):
    assert is_hidden(path, within) is hidden
    with caplog.at_level(logging.INFO):
        assert skip_hidden([path], "here", within=within) == ([] if hidden else [path])
    assert ("skipped 1 hidden file(s) in here" in caplog.text) is hidden


# Helpers of the image dataset tests (test_data.py), and the image inputs that tests/test_predict.py runs.

APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X"  # what a `._photo.png` holds: not an image


def unreadable_files() -> dict[str, bytes]:
    """Two garbage files and one truncated JPEG, by file name."""
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buffer, "JPEG")
    return {"zz_bad_0.png": b"not an image", "zz_bad_1.png": b"", "zz_cut.jpg": buffer.getvalue()[:-400]}


def check_skip_corrupt_training(root: Path, tmp_path: Path, cli_overrides, capsys, bad: int) -> None:
    """One epoch with data.skip_corrupt on data that holds `bad` unreadable train images: each counted once."""
    # mean/std computed from train reads the bad files too, but must not add them to the epoch's count.
    settings = {"data.root": root, "data.skip_corrupt": True, "run_name": "run", "output_dir": tmp_path / "runs"}
    assert train.main(cli_overrides(**settings)) == 0
    log = capsys.readouterr().err
    assert f"epoch 1: skipped {bad} unreadable train images" in log
    assert "unreadable val images" not in log
    assert (tmp_path / "runs" / "run" / "checkpoints" / "last.pt").is_file()


def mixed_predict_inputs(data_root: Path, names: list[str], tmp_path: Path):
    """(inputs, the names predict.py must give, in order; pairs of names that must get the same numbers).

    A folder (recursive, sorted, non-images and hidden files ignored), a file with a space in its name, files.
    """
    originals = [Path(name) for name in names[:4]]
    inbox = tmp_path / "inbox"
    (inbox / "b" / "deeper").mkdir(parents=True)
    (inbox / "__MACOSX").mkdir()
    copies = [inbox / "b" / "deeper" / "z", inbox / "b" / "y", inbox / "a"]
    copies = [copy.with_suffix(original.suffix) for copy, original in zip(copies, originals[:3], strict=True)]
    for original, copy in zip(originals[:3], copies, strict=True):
        shutil.copyfile(original, copy)
    for hidden in (inbox / "b" / "._y.png", inbox / "__MACOSX" / "._a.png"):
        hidden.write_bytes(APPLE_DOUBLE)
    (inbox / "notes.md").write_text("not an image")
    spaced = tmp_path / "my scans" / f"scan 1{originals[3].suffix}"
    spaced.parent.mkdir()
    shutil.copyfile(originals[3], spaced)
    inputs = [inbox, spaced, originals[0], originals[2]]
    expected = [*sorted(copies), *inputs[1:]]
    same = [(str(copies[0]), names[0]), (str(copies[2]), names[2])]
    return [str(p) for p in inputs], [str(p) for p in expected], same


def bad_predict_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    """(inputs, the error they must raise, as a regex) for predict.py."""
    broken, notes = tmp_path / "broken.png", tmp_path / "notes.md"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    notes.write_text("hi")
    (tmp_path / "empty").mkdir()
    cases = [
        ([broken], f"cannot read image {broken}"),
        ([tmp_path / "missing.png"], "does not exist"),
        ([tmp_path / "empty"], f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found under {tmp_path / 'empty'}"),
        ([notes], f"{notes} is not an image"),
        (["trainer.device=cpu"], "no images given"),  # overrides are not inputs
    ]
    return [([str(p) for p in inputs], re.escape(message)) for inputs, message in cases]


def cli_bad_predict_input(tmp_path: Path) -> tuple[list[str], str]:
    """(predict.py arguments, how its one-line error starts): an unreadable image met in a DataLoader worker."""
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff truncated")
    return [str(broken), "data.num_workers=1"], f"error: cannot read image {broken}"
