"""Image decoding benchmark: decode only the pixels needed; decode once (data.preload=disk).

    python benchmarks/image_decode.py [--images 60] [--width 2000] [--height 1500] [--size 224]
                                      [--workers 2] [--repeats 5]

On generated photo-sized JPEGs (quality 90), side by side in one run, with the generated project's
own code (image_folder, rendered into a temp folder):
1. Images/s per core (one thread, the main process, the validation transform):
   - bare PIL: full decode, convert, resize (what the old path costs at least);
   - the old path: `open_image` without a size (full decode) + the project's validation transform;
   - bare PIL with `Image.draft` (libjpeg DCT scaling), convert, resize (what decoding can reach);
   - the default lazy path now: the val dataset's `__getitem__` (draft decode + transform);
   - the same two for pretrained weights (resnet18's preset): bare PIL draft + shorter side
     resized + centre crop, vs the val dataset of `model.pretrained=true`;
   - data.preload=disk on epoch 2: batches gathered from the cache + the batched transform.
2. Epoch time of the train loader (augmentation on) with --workers workers: lazy vs preload=disk
   on epoch 2 (the first epoch after the cache was built).
3. Normalisation of one decoded image (PILToTensor's channels-last view), per image: the
   project's Normalize255 (one pass, (x - 255 mean) / (255 std)) vs torchvision's
   ToDtype(scale=True) + Normalize on a contiguous copy and on the view: why it is kept.
Each figure is the median of --repeats interleaved rounds, so machine noise hits every side alike.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from rendering import import_project, render_image_folder_project

CLASSES = ("a", "b")


def write_photos(root: Path, count: int, width: int, height: int) -> None:
    """`count` photo-like JPEGs (smooth gradients, discs, sensor noise) split over train/<class>/;
    val/ holds the same files (hard links), so both splits decode the same pixels."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(count):
        phase = rng.uniform(0, 6, 3)
        waves = [np.sin(x / width * 5 + p) * np.cos(y / height * 3 - p) for p in phase]
        pixels = 128 + 90 * np.stack(waves, -1)
        pixels += rng.normal(0, 4, pixels.shape)
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(8):
            left, top = int(rng.integers(0, width)), int(rng.integers(0, height))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            draw.ellipse([left, top, left + width // 6, top + height // 5], fill=colour)
        name = f"{CLASSES[i % 2]}/{i:04d}.jpg"
        for split in ("train", "val"):
            (root / split / CLASSES[i % 2]).mkdir(parents=True, exist_ok=True)
        image.save(root / "train" / name, quality=90)
        os.link(root / "train" / name, root / "val" / name)


def per_second(count: int, run) -> float:
    start = time.perf_counter()
    run()
    return count / (time.perf_counter() - start)


def bare(paths: list[Path], size: int, draft: bool) -> None:
    for path in paths:
        with Image.open(path) as image:
            if draft:
                image.draft("RGB", (size, size))
            image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)


def bare_preset(paths: list[Path], resize: int, crop: int) -> None:
    """torchvision's preset at its least: draft, shorter side to `resize`, the centre crop."""
    for path in paths:
        with Image.open(path) as image:
            image.draft("RGB", (resize, resize))
            image = image.convert("RGB")
            scale = resize / min(image.size)
            sides = [round(side * scale) for side in image.size]
            image = image.resize(sides, Image.Resampling.BILINEAR)
            left, top = (image.width - crop) // 2, (image.height - crop) // 2
            image.crop((left, top, left + crop, top + crop))


def normalize_ms(augment, size: int, repeats: int) -> dict:
    """Milliseconds per image of each way to normalise a PILToTensor view (one thread)."""
    from torchvision.transforms import v2

    noise = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    view = v2.PILToTensor()(Image.fromarray(noise))
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    library = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
    ways = {
        "Normalize255 (one pass)": augment.Normalize255(mean, std),
        "contiguous + ToDtype + Normalize": lambda x: library(x.contiguous()),
        "ToDtype + Normalize on the view": library,
    }
    times = {name: [] for name in ways}
    for _ in range(repeats):
        for name, way in ways.items():
            rate = per_second(200, lambda way=way: [way(view) for _ in range(200)])
            times[name].append(1000 / rate)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--width", type=int, default=2000)
    parser.add_argument("--height", type=int, default=1500)
    parser.add_argument("--size", type=int, default=224, help="data.image_size")
    parser.add_argument("--workers", type=int, default=2, help="data.num_workers (epochs)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        m = import_project(render_image_folder_project(tmp, "bench decode"))
        images = sys.modules[f"{m.pkg}.data.images"]
        root = tmp / "photos"
        write_photos(root, args.images, args.width, args.height)
        overrides = [
            f"data.root={root}", f"data.image_size={args.size}", "data.batch_size=32",
            "trainer.device=cpu", "data.mean=[0.5,0.5,0.5]", "data.std=[0.25,0.25,0.25]",
            f"data.cache_dir={tmp / 'cache'}", "trainer.progress_bar=false",
        ]  # fmt: skip

        def loaders(preload: str, workers: int, *more: str):
            choice = [f"data.preload={preload}", f"data.num_workers={workers}", *more]
            cfg = m.config.load_config(None, [*overrides, *choice])
            return m.data.build_dataloaders(cfg)

        # 1. Per core: one thread, no workers, the validation transform.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        val_set = loaders("false", 0)[1].dataset
        old_set = val_set.with_transform(val_set.transform)
        old_set.load = images.open_image  # full decode: what every image cost before
        weights_val = loaders("false", 0, "model.name=resnet18", "model.pretrained=true")[1]
        weights_val = weights_val.dataset
        side = weights_val.resize.side  # 256 for 224
        paths = [Path(source) for source, _ in val_set.samples]
        start = time.perf_counter()
        disk_val = loaders("disk", 0)[1]
        build_s = time.perf_counter() - start
        sides = {
            "bare PIL, full decode + resize": lambda: bare(paths, args.size, draft=False),
            "old path: full decode + transform": lambda: [old_set[i] for i in range(len(old_set))],
            "bare PIL, draft + resize": lambda: bare(paths, args.size, draft=True),
            "lazy path now: draft + transform": lambda: [val_set[i] for i in range(len(val_set))],
            "bare PIL, pretrained preset": lambda: bare_preset(paths, side, args.size),
            "lazy pretrained: draft + preset": lambda: [weights_val[i] for i in range(len(paths))],
            "preload=disk, epoch 2": lambda: [batch for batch in disk_val],
        }
        rates = {name: [] for name in sides}
        for _ in range(args.repeats):
            for name, run in sides.items():
                rates[name].append(per_second(len(paths), run))
        augment = sys.modules[f"{m.pkg}.data.augment"]
        normalize = normalize_ms(augment, args.size, args.repeats)
        torch.set_num_threads(threads)
        rate = {name: statistics.median(values) for name, values in rates.items()}

        # 2. Epoch time of the train loader with workers: lazy vs preload=disk (cache built above).
        lazy_train = loaders("false", args.workers)[0]
        disk_train = loaders("disk", args.workers)[0]
        epochs = {"lazy": [], "disk": []}
        for _ in range(args.repeats):
            for name, loader in (("lazy", lazy_train), ("disk", disk_train)):
                start = time.perf_counter()
                for _batch in loader:
                    pass
                epochs[name].append(time.perf_counter() - start)
        epoch = {name: statistics.median(values) for name, values in epochs.items()}

    print(
        f"{args.images} JPEGs of {args.width}x{args.height} (quality 90) -> {args.size} px; "
        f"torch {torch.__version__}, {os.cpu_count()} CPUs"
    )
    print("images/s per core (1 thread, validation transform):")
    for name, value in rate.items():
        print(f"  {name:36s} {value:8.1f}")
    print(f"  (preload=disk: cache built once in {build_s:.2f} s for train and val)")
    print(f"train epoch, {args.workers} workers, augmentation on:")
    print(f"  lazy                                 {epoch['lazy']:8.3f} s")
    print(f"  preload=disk, epoch 2                {epoch['disk']:8.3f} s")
    now = rate["lazy path now: draft + transform"]
    print(f"ratio lazy now / old path: {now / rate['old path: full decode + transform']:.2f}x")
    draft = now / rate["bare PIL, draft + resize"]
    print(f"ratio lazy now / bare PIL draft: {draft:.2f} (target >= 0.90)")
    preset = rate["lazy pretrained: draft + preset"] / rate["bare PIL, pretrained preset"]
    print(f"ratio lazy pretrained / bare PIL preset: {preset:.2f} (target >= 0.90)")
    print(f"normalising one {args.size} px image (1 thread), ms:")
    for name, value in normalize.items():
        print(f"  {name:36s} {value:8.3f}")
    disk = epoch["lazy"] / epoch["disk"]
    workers = args.workers
    print(f"ratio preload=disk epoch 2 / lazy epoch, {workers} workers: {disk:.1f}x (target >= 5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
