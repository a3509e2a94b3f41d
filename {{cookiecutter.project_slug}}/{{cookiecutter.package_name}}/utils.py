"""Helpers: logging that keeps progress bars intact, seeds, atomic file writes."""

import hashlib
import logging
import math
import os
import random
import sys
from pathlib import Path

import torch
from tqdm import tqdm

PACKAGE_LOGGER = __name__.split(".")[0]
# No tqdm monitor thread: DataLoader workers are forked from this process, and a fork must not
# happen while a thread runs (it can deadlock the child).
tqdm.monitor_interval = 0


class TqdmHandler(logging.StreamHandler):
    """Console handler that prints through `tqdm.write`, so log lines never break a bar."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:
            self.handleError(record)


def setup_logging(log_file: Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Console (INFO) + optional file (DEBUG) handlers on the package logger; safe to call again."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    console = TqdmHandler(sys.stderr)
    console.setLevel(level)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    logger.addHandler(console)
    if log_file is not None:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(file_handler)
    return logger


def show_progress(enabled: bool) -> bool:
    """Bars only when asked for and stderr is a terminal (no bar spam in log files or CI)."""
    return enabled and sys.stderr.isatty()


# Every random stream of a run, each seeded from `seed` alone, so any epoch can be replayed:
#   init    model weights
#   split   the held-out val split and the samples drawn for statistics
#   loader  shuffling and DataLoader worker seeds, per epoch
#   step    dropout and other random draws in the main process, per epoch
SEED_STREAMS = ("init", "split", "loader", "step")


def derive_seed(seed: int, stream: str, epoch: int = 0) -> int:
    """The seed of one random stream; `init` and `split` are `seed` itself."""
    assert stream in SEED_STREAMS, stream
    if stream in ("init", "split"):
        return seed
    digest = hashlib.blake2b(f"{seed}/{stream}/{epoch}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy (when installed) and torch (every device)."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:  # numpy is not a dependency of every project; seed it where it is installed
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass
    if deterministic:
        # cuBLAS needs this to be reproducible; set before its first matmul.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: ops without a deterministic kernel warn instead of stopping the run.
        torch.use_deterministic_algorithms(True, warn_only=True)


def atomic_write(path, write) -> None:
    """`write(file)` into a temp file beside `path`, fsync, then rename over it.

    A crash at any moment leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_text(path, text: str) -> None:
    atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def free_ram() -> int | None:
    """Bytes of RAM that can still be allocated (None when the OS does not say)."""
    try:  # Linux: MemAvailable counts reclaimable caches too (unlike the free pages below)
        text = Path("/proc/meminfo").read_text()
        return int(text.split("MemAvailable:")[1].split()[0]) * 1024
    except (OSError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def sort_labels(labels) -> list[str]:
    """Class names in a natural order: numerically when every label is a number ("2" before "10"), else by text."""
    unique = {str(label) for label in labels}
    try:
        numeric = all(math.isfinite(float(label)) for label in unique)
    except ValueError:
        numeric = False
    return sorted(unique, key=lambda label: (float(label), label)) if numeric else sorted(unique)
