"""A built-in dataset (MNIST, FashionMNIST, CIFAR10) read from its own files under `data.root`.

Validation is a seeded `data.val_fraction` of the train split, held out; the dataset's official test
split is the test split, evaluated only (at the end of training, and by `evaluate.py --split test`).
Missing files are downloaded when `data.download` is true (torchvision checks the md5 of what it
fetches); with it false nothing touches the network. The MNIST family is read by torchvision
(IDX files: plain arrays, safe to parse).
CIFAR-10 batches are pickles, and a pickle can run code, so they are read here with an
unpickler that only rebuilds numpy arrays: a tampered file is refused, not executed.

Every `dataset.py` has EXPECTED_LAYOUT, PREDICT_INPUTS, ensure_data_root, build_datasets, build_test_set,
preload_split and predict_inputs (for loaders.py and predict.py); its datasets have a `collate_fn`, a
`source(i)`, maybe `take_skipped()` and, for images, `image(i)` (report.py).
"""

import hashlib
import pickle
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torchvision
from PIL import Image

from .common import DataError, holdout_split
from .images import PREDICT_INPUTS, eval_dataset, image_datasets, predict_inputs, preload_split

EXPECTED_LAYOUT = (
    "  MNIST:        <root>/MNIST/raw/train-images-idx3-ubyte, train-labels-idx1-ubyte,\n"
    "                t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte  (uncompressed IDX files)\n"
    "  FashionMNIST: <root>/FashionMNIST/raw/ with the same four files\n"
    "  CIFAR10:      <root>/cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch, batches.meta"
)

__all__ = [
    "EXPECTED_LAYOUT",
    "PREDICT_INPUTS",
    "build_datasets",
    "build_test_set",
    "ensure_data_root",
    "predict_inputs",
    "preload_split",
]

NATIVE_MODE = {"MNIST": "L", "FashionMNIST": "L", "CIFAR10": "RGB"}
NATIVE_SIZE = 32  # data.image_size=0 without pretrained weights: CIFAR10's size (MNIST's 28 resized)
# Per-channel mean/std of the train split at the native mode, as published (and used by torchvision's references).
PUBLISHED_STATS = {
    "MNIST": ([0.1307], [0.3081]),
    "FashionMNIST": ([0.2860], [0.3530]),
    "CIFAR10": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
}
# (file, IDX magic number): 0x0803 = uint8 with 3 dims (images), 0x0801 = uint8 with 1 dim (labels).
IDX_FILES = {
    True: (("train-images-idx3-ubyte", 0x0803), ("train-labels-idx1-ubyte", 0x0801)),
    False: (("t10k-images-idx3-ubyte", 0x0803), ("t10k-labels-idx1-ubyte", 0x0801)),
}
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_FILES = [*CIFAR_TRAIN, "test_batch", "batches.meta"]
# What unpickling a CIFAR-10 batch needs: ndarray reconstruction (names of numpy 1 and 2, pickle protocols 2-5).
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes pickled by Python 3 at protocol 2
}
NUMPY_CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"
# What a truncated or garbled pickle raises.
UNPICKLE_ERRORS = (OSError, EOFError, ValueError, TypeError, LookupError, AttributeError, pickle.UnpicklingError)


def ensure_data_root(cfg) -> None:
    """A missing root is fine when torchvision may download into it; the dataset checks its files."""
    if cfg.data.download or Path(cfg.data.root).exists():
        return
    raise DataError(
        f"data.root={cfg.data.root!r} does not exist and data.download is false; expected:\n{EXPECTED_LAYOUT}"
    )


class ArrayImages:
    """`load(index)` for `ImageDataset`: one uint8 image (H, W) or (H, W, 3) of an array, as PIL.

    A class, not a lambda, so that DataLoader worker processes can pickle it.
    """

    def __init__(self, images: np.ndarray, n_train: int):
        self.images = images  # train images first, then test ones
        self.n_train = n_train
        self.digest = None

    def __call__(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index])  # (H, W) uint8 -> L, (H, W, 3) -> RGB

    def describe(self, index: int) -> str:
        """The split and position of image `index` in it, e.g. `test #17`."""
        return f"train #{index}" if index < self.n_train else f"test #{index - self.n_train}"

    def fingerprint(self) -> str:
        """A hash of the pixels, for the data.preload=disk cache key (hashed once: train and val share them)."""
        self.digest = self.digest or hashlib.sha256(np.ascontiguousarray(self.images).data).hexdigest()
        return self.digest


class SafeUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays, lists, dicts and strings; any other global is refused before it is loaded."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="latin1")  # batches were pickled by Python 2, as torchvision reads them
        self.path = path

    def find_class(self, module: str, name: str):
        # numpy 2 renamed numpy.core to numpy._core; files name either, so accept both with either numpy.
        canonical = module.replace("numpy._core.", "numpy.core.", 1)
        if (canonical, name) not in SAFE_GLOBALS:
            raise DataError(
                f"{self.path}: refusing to unpickle {module}.{name}; a CIFAR-10 batch holds only numpy arrays, "
                "lists and strings, so this file is not one (or was tampered with). Delete it and download the "
                "dataset again."
            )
        return super().find_class(canonical.replace("numpy.core.", NUMPY_CORE + ".", 1), name)


def read_cifar_pickle(path: Path) -> dict:
    """One CIFAR-10 file (a batch or batches.meta) as a dict, read without running code from it."""
    try:
        with open(path, "rb") as file:
            entry = SafeUnpickler(file, path).load()
    except DataError:
        raise
    except UNPICKLE_ERRORS as err:
        raise DataError(
            f"cannot read CIFAR-10 file {path} ({type(err).__name__}: {err}); it is truncated or corrupt: "
            "delete it and download the dataset again"
        ) from None
    if not isinstance(entry, dict):
        raise DataError(f"CIFAR-10 file {path} holds a {type(entry).__name__}, not a dict")
    return entry


def read_cifar_batch(path: Path, num_classes: int) -> tuple[np.ndarray, list[int]]:
    """(images (N, 32, 32, 3) uint8 HWC, labels) of one batch; each row is 1024 R, then G, then B values."""
    entry = read_cifar_pickle(path)
    data = entry.get("data")
    labels = entry.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"CIFAR-10 batch {path}: 'data' must be a uint8 array (N, 3072), found {found}")
    if not isinstance(labels, list) or len(labels) != len(data):
        count = len(labels) if isinstance(labels, list) else type(labels).__name__
        raise DataError(f"CIFAR-10 batch {path}: 'labels' must be a list of {len(data)} ints, found {count}")
    bad = [label for label in labels if not isinstance(label, int) or not 0 <= label < num_classes]
    if bad:
        raise DataError(f"CIFAR-10 batch {path}: labels must be ints in 0..{num_classes - 1}, found {bad[:5]}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def download_failed(name: str, root: Path, err: Exception, needed: str) -> DataError:
    reason = " ".join(str(err).split())  # torchvision's message spans lines
    return DataError(
        f"downloading {name} into data.root={str(root)!r} failed ({type(err).__name__}: {reason}). Without network "
        f"access, fetch it on a machine that has it (torchvision.datasets.{name}(root, download=True) writes it "
        f"under root), copy {needed} to {root}, then run with data.download=false."
    )


def missing_files(name: str, folder: Path, missing: list[str]) -> DataError:
    return DataError(
        f"{name} files missing under {folder}: {', '.join(missing)}, and data.download is false. Either run with "
        f"data.download=true to fetch them, or (offline) copy them into {folder} from a machine where "
        f"torchvision.datasets.{name}(root, download=True) fetched them under root. Expected under data.root:\n"
        f"{EXPECTED_LAYOUT}"
    )


def check_idx(path: Path, magic: int) -> int:
    """Validate an uncompressed IDX file's header and size (torchvision's reader would fail obscurely); return N."""
    ndim = magic & 0xFF
    size = path.stat().st_size
    with open(path, "rb") as file:
        header = file.read(4 + 4 * ndim)
    if len(header) < 4 + 4 * ndim or int.from_bytes(header[:4], "big") != magic:
        found = f"0x{int.from_bytes(header[:4], 'big'):08x}" if len(header) >= 4 else f"{size} bytes"
        raise DataError(
            f"{path} is not an uncompressed IDX file of {ndim}-d uint8 data (magic 0x{magic:08x}, found {found}); "
            "delete it and download again (a .gz must be unpacked)"
        )
    dims = [int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = len(header) + int(np.prod(dims))
    if size != expected:
        raise DataError(f"{path} is truncated or corrupt: dims {dims} need {expected} bytes, found {size}")
    return dims[0]


def load_mnist_family(cfg, name: str, root: Path):
    """(images (N, H, W) uint8 with train then test, train labels, test labels, class names)."""
    dataset_class = getattr(torchvision.datasets, name)
    raw = root / name / "raw"
    files = [file for train in (True, False) for file, _ in IDX_FILES[train]]
    missing = [file for file in files if not (raw / file).is_file()]
    if missing and not cfg.data.download:
        raise missing_files(name, raw, missing)
    if missing:
        try:
            dataset_class(root, train=True, download=True)  # fetches all four files
        except (URLError, OSError, RuntimeError) as err:
            if any(not (raw / file).is_file() for file in files):
                raise download_failed(name, root, err, f"the {name}/raw/ folder") from None
            # Fetched but unreadable: the checks below name the file.
    splits = []
    for train in (True, False):
        (images_file, images_magic), (labels_file, labels_magic) = IDX_FILES[train]
        n_images = check_idx(raw / images_file, images_magic)
        n_labels = check_idx(raw / labels_file, labels_magic)
        if n_images != n_labels:
            raise DataError(f"{raw / images_file} has {n_images} images but {raw / labels_file} {n_labels} labels")
        dataset = dataset_class(root, train=train, download=False)
        labels = dataset.targets.numpy()
        if len(labels) and labels.max() >= len(dataset_class.classes):
            raise DataError(f"{raw / labels_file}: label {labels.max()} >= {len(dataset_class.classes)} classes")
        splits.append((dataset.data.numpy(), labels))
    (train_images, train_labels), (test_images, test_labels) = splits
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(f"{raw}: train images are {train_images.shape[1:]}, test images {test_images.shape[1:]}")
    return np.concatenate([train_images, test_images]), train_labels, test_labels, list(dataset_class.classes)


def load_cifar10(cfg, root: Path):
    """(images (N, 32, 32, 3) uint8 with train then test, train labels, test labels, class names)."""
    folder = root / CIFAR_FOLDER
    missing = [file for file in CIFAR_FILES if not (folder / file).is_file()]
    if missing and not cfg.data.download:
        raise missing_files("CIFAR10", folder, missing)
    if missing:
        cifar = torchvision.datasets.CIFAR10
        try:
            # The same archive and md5 check as CIFAR10(download=True), without its plain-pickle load.
            torchvision.datasets.utils.download_and_extract_archive(
                cifar.url, str(root), filename=cifar.filename, md5=cifar.tgz_md5
            )
        except (URLError, OSError, RuntimeError) as err:
            needed = f"the {CIFAR_FOLDER}/ folder (or unpack {cifar.filename})"
            raise download_failed("CIFAR10", root, err, needed) from None
        still = [file for file in CIFAR_FILES if not (folder / file).is_file()]
        if still:
            raise DataError(f"the CIFAR-10 download into {root} did not provide {', '.join(still)} under {folder}")
    meta_path = folder / "batches.meta"
    classes = read_cifar_pickle(meta_path).get("label_names")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise DataError(f"{meta_path}: 'label_names' must be a list of class names, found {classes!r:.80}")
    train = [read_cifar_batch(folder / file, len(classes)) for file in CIFAR_TRAIN]
    test_images, test_labels = read_cifar_batch(folder / "test_batch", len(classes))
    images = np.concatenate([*(images for images, _ in train), test_images])
    train_labels = [label for _, labels in train for label in labels]
    return images, np.array(train_labels, dtype=np.int64), np.array(test_labels, dtype=np.int64), classes


def load_arrays(cfg, data_info: dict | None):
    """(images with train then test, train labels, test labels, class names) of data.name."""
    name = cfg.data.name
    root = Path(cfg.data.root)
    if name == "CIFAR10":
        images, train_labels, test_labels, classes = load_cifar10(cfg, root)
    else:
        images, train_labels, test_labels, classes = load_mnist_family(cfg, name, root)
    if data_info is not None and list(data_info["classes"]) != classes:
        raise DataError(
            f"the checkpoint was trained on classes {list(data_info['classes'])}, but data.name={name} "
            f"under {root} has {classes}"
        )
    if not len(train_labels) or not len(test_labels):
        raise DataError(f"{name} under {root} has {len(train_labels)} train / {len(test_labels)} test images")
    return images, train_labels, test_labels, classes


def build_datasets(cfg, data_info: dict | None = None):
    """(train_set, val_set, data_info); `data_info` from a checkpoint fixes mode and normalisation."""
    name = cfg.data.name
    images, train_labels, _, classes = load_arrays(cfg, data_info)
    # Sources are indices into one array holding train then test images; val is held out of train.
    train_ids, val_ids = holdout_split(len(train_labels), cfg.data.val_fraction, cfg.seed)
    train_samples = [(i, int(train_labels[i])) for i in train_ids]
    val_samples = [(i, int(train_labels[i])) for i in val_ids]
    mode = NATIVE_MODE[name] if cfg.data.image_mode == "auto" else cfg.data.image_mode
    # Published stats describe the native channels only; another mode gets stats computed from train.
    known_stats = PUBLISHED_STATS[name] if mode == NATIVE_MODE[name] else None
    load = ArrayImages(images, len(train_labels))
    return image_datasets(cfg, train_samples, val_samples, classes, data_info, load, known_stats, mode, NATIVE_SIZE)


def build_test_set(cfg, data_info: dict):
    """The dataset's official test split, transformed as validation is."""
    images, train_labels, test_labels, _ = load_arrays(cfg, data_info)
    samples = [(len(train_labels) + i, int(label)) for i, label in enumerate(test_labels)]
    return eval_dataset(cfg, samples, data_info, ArrayImages(images, len(train_labels)))
