"""`data.preload=disk`: decode the images once into a cache file, then read them from it, memory-mapped.

For data larger than RAM. Batches are gathered from the mapped file (the OS page cache keeps what
fits), so the process's own memory stays flat; augmentation runs on the batch, as with preload=cpu.
A cache is keyed by the samples (paths, labels, file sizes and mtimes) and the decode settings, so
any change builds a new one. The images are written to a temporary file that is renamed, and the
index last: a cache without its index (a crash while writing) is never read. Delete the folder any time.
"""

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
from pathlib import Path

import torch

from ..errors import DataError
from ..utils import atomic_write, atomic_write_text
from .preload import gib

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the decoding changes: older caches are then rebuilt, not read


def cache_key(dataset, split: str) -> str:
    """A hash of everything the cached pixels depend on."""
    resize = [dataset.resize.side, dataset.resize.interpolation]
    settings = {"format": FORMAT, "split": split, "mode": dataset.mode, "size": dataset.size, "resize": resize}
    digest = hashlib.sha256(json.dumps(settings).encode())
    fingerprint = getattr(dataset.load, "fingerprint", None)  # a loader of images held in memory hashes them
    if fingerprint is not None:
        digest.update(fingerprint().encode())
    for source, label in dataset.samples:
        stat = os.stat(source) if isinstance(source, (str, Path)) else None
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}" if stat else ""
        digest.update(f"{source}\0{label}\0{stamp}\n".encode())
    return digest.hexdigest()


def read_index(index_path: Path, data_path: Path, key: str, image_bytes: int) -> dict | None:
    """The index of a complete cache for `key`, else None."""
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        complete = index["key"] == key and data_path.stat().st_size == index["count"] * image_bytes
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return index if complete else None


@contextlib.contextmanager
def exclusive(lock_path: Path):
    """One process builds a cache (of two runs, or of the processes of one job) while the rest wait, then read it."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; concurrent builds write the same bytes and rename atomically
        yield
        return
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build(dataset, make_batches, data_path: Path, index_path: Path, key: str, image_bytes: int) -> dict:
    need = len(dataset) * image_bytes
    free = shutil.disk_usage(data_path.parent).free
    if need > free:
        raise DataError(
            f"data.preload=disk needs {gib(need)} in data.cache_dir={str(data_path.parent)!r}, which has "
            f"{gib(free)} free; free space there, point data.cache_dir elsewhere, or use data.preload=false"
        )
    labels = []

    def write(file):
        for images, targets in make_batches():  # unreadable images (data.skip_corrupt) are left out
            file.write(images.contiguous().numpy().tobytes())
            labels.extend(targets.tolist())

    log.info("data.preload=disk: decoding %d images once into %s", len(dataset), data_path)
    try:
        atomic_write(data_path, write)
        dataset.take_skipped()  # the index keeps the count
        index = {"key": key, "count": len(labels), "skipped": len(dataset) - len(labels), "labels": labels}
        atomic_write_text(index_path, json.dumps(index))
    except OSError as err:
        raise DataError(f"cannot write the data.preload=disk cache {data_path}: {err}") from None
    return index


def cached_images(dataset, cfg, split: str, make_batches, image_shape: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (N, *image_shape) mapped from the cache file, labels). Unless a complete cache of the
    same data exists, it is built first from `make_batches()`: (uint8 images of image_shape, labels)."""
    image_bytes = math.prod(image_shape)
    key = cache_key(dataset, split)
    folder = Path(cfg.data.cache_dir)
    data_path = folder / f"{split}-{key[:24]}.uint8"
    index_path = data_path.with_suffix(".json")
    index = read_index(index_path, data_path, key, image_bytes)
    if index is None:
        folder.mkdir(parents=True, exist_ok=True)
        with exclusive(folder / ".lock"):
            index = read_index(index_path, data_path, key, image_bytes)  # built meanwhile by another process?
            if index is None:
                index = build(dataset, make_batches, data_path, index_path, key, image_bytes)
    count = index["count"]
    if index["skipped"]:
        log.warning("data.preload=disk: %d unreadable %s images are not in the cache", index["skipped"], split)
    log.info("data.preload=disk: %d %s images read from %s (%s)", count, split, data_path, gib(count * image_bytes))
    shape = (count, *image_shape)
    if count == 0:
        return torch.empty(shape, dtype=torch.uint8), torch.empty(0, dtype=torch.int64)
    # shared=False: a private mapping; pages are read from the file when touched and never written back.
    images = torch.from_file(str(data_path), shared=False, size=count * image_bytes, dtype=torch.uint8)
    return images.view(shape), torch.tensor(index["labels"], dtype=torch.int64)
