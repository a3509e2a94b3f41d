"""Write a small, learnable stand-in for MNIST, FashionMNIST or CIFAR10 in the dataset's own file format.

    python -m <package>.data.sample data --name CIFAR10
    python train.py data.root=data data.name=CIFAR10 data.download=false

The real loader reads these files exactly as it reads the real ones (IDX files under
`<root>/<name>/raw/`, pickled batches under `<root>/cifar-10-batches-py/`), so tests and
offline smoke runs exercise the real code path without a download. Each of the 10 classes
is one or two bright bars at a class-specific angle, with jittered position, length,
thickness and brightness on a noisy background (CIFAR10: in a class-specific colour).
"""

import argparse
import pickle
import struct
from pathlib import Path

import numpy as np

NAMES = ("MNIST", "FashionMNIST", "CIFAR10")
NUM_CLASSES = 10
CIFAR_LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Class colours of the CIFAR10 stand-in (RGB), jittered per image.
CIFAR_COLOURS = [
    (230, 60, 60),
    (60, 200, 60),
    (70, 90, 230),
    (230, 200, 50),
    (200, 70, 200),
    (60, 200, 200),
    (240, 140, 40),
    (150, 230, 120),
    (120, 120, 240),
    (240, 240, 240),
]


def draw_bars(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A float (size, size) mask in [0, 1]: classes 0-4 one bar, 5-9 two parallel bars, at angle 36 * (label % 5)."""
    angle = np.deg2rad(36 * (label % 5) + rng.uniform(-5, 5))
    centre = size / 2 + rng.uniform(-0.1, 0.1, 2) * size
    half_length = rng.uniform(0.28, 0.38) * size
    half_width = rng.uniform(0.04, 0.07) * size
    y, x = np.mgrid[0:size, 0:size] + 0.5
    along = (x - centre[0]) * np.cos(angle) + (y - centre[1]) * np.sin(angle)
    across = -(x - centre[0]) * np.sin(angle) + (y - centre[1]) * np.cos(angle)
    offsets = [0.0] if label < 5 else [-0.13 * size, 0.13 * size]
    mask = np.zeros((size, size))
    for offset in offsets:
        # Anti-aliased edges: 1 inside, falling to 0 over one pixel.
        inside = np.minimum(half_length - np.abs(along), half_width - np.abs(across - offset))
        mask = np.maximum(mask, np.clip(inside + 0.5, 0, 1))
    return mask


def make_images(name: str, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 images for `labels`: (N, 28, 28) for the MNIST family, (N, 32, 32, 3) for CIFAR10."""
    size = 32 if name == "CIFAR10" else 28
    images = []
    for label in labels:
        mask = draw_bars(int(label), size, rng)
        if name == "CIFAR10":
            background = rng.uniform(40, 140, 3) + rng.normal(0, 20, (size, size, 3))
            colour = np.clip(np.array(CIFAR_COLOURS[label]) + rng.uniform(-30, 30, 3), 0, 255)
            image = background * (1 - mask[..., None]) + colour * mask[..., None]
        else:
            # Bright strokes on a dark background, as in MNIST.
            background = np.abs(rng.normal(0, 25, (size, size)))
            image = background * (1 - mask) + rng.uniform(170, 255) * mask
        images.append(np.clip(image + rng.normal(0, 8, image.shape), 0, 255).round().astype(np.uint8))
    return np.stack(images)


def split_labels(per_class: int, rng: np.random.Generator) -> np.ndarray:
    """`per_class` of each class, shuffled (the real files are not sorted by class)."""
    return rng.permutation(np.repeat(np.arange(NUM_CLASSES), per_class))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Uncompressed IDX: big-endian magic (0x08 = uint8, then the number of dims), dims, raw bytes."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_cifar_batch(path: Path, images: np.ndarray, labels: np.ndarray, batch_label: str) -> None:
    """A dict like the real batches: `data` uint8 (N, 3072) rows of R, G, B planes, `labels` a list of ints."""
    entry = {
        "batch_label": batch_label,
        "labels": [int(label) for label in labels],
        "data": images.transpose(0, 3, 1, 2).reshape(len(images), -1),
        "filenames": [f"sample_{i:05d}.png" for i in range(len(images))],
    }
    with open(path, "wb") as file:
        pickle.dump(entry, file, protocol=2)  # the real batches are protocol-2 pickles


def write_sample(
    root, name: str = "MNIST", train_per_class: int = 200, test_per_class: int = 50, seed: int = 0
) -> Path:
    """Write the stand-in for `name` under `root` (the layout data.root expects); return root."""
    if name not in NAMES:
        raise ValueError(f"name must be one of {', '.join(NAMES)}, not {name!r}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    train_labels = split_labels(train_per_class, rng)
    test_labels = split_labels(test_per_class, rng)
    train_images = make_images(name, train_labels, rng)
    test_images = make_images(name, test_labels, rng)
    if name == "CIFAR10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        for i, ids in enumerate(np.array_split(np.arange(len(train_labels)), 5), start=1):
            batch_label = f"training batch {i} of 5"
            write_cifar_batch(folder / f"data_batch_{i}", train_images[ids], train_labels[ids], batch_label)
        write_cifar_batch(folder / "test_batch", test_images, test_labels, "testing batch 1 of 1")
        meta = {"num_cases_per_batch": len(train_labels) // 5, "label_names": CIFAR_LABEL_NAMES, "num_vis": 3072}
        with open(folder / "batches.meta", "wb") as file:
            pickle.dump(meta, file, protocol=2)
        return root
    raw = root / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, images, labels in (("train", train_images, train_labels), ("t10k", test_images, test_labels)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels.astype(np.uint8))
    return root


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="data.root to write under")
    parser.add_argument("--name", choices=NAMES, default="MNIST", help="which dataset's files to imitate")
    parser.add_argument("--train-per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_sample(args.root, args.name, args.train_per_class, args.test_per_class, args.seed)
    print(f"wrote a sample {args.name} under {args.root}; train with data.root={args.root} data.name={args.name}")


if __name__ == "__main__":
    main()
