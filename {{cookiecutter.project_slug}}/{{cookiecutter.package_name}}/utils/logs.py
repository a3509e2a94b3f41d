import logging
import sys
from pathlib import Path

from tqdm import tqdm

PACKAGE_LOGGER = __name__.split(".")[0]


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


def error_message(err: Exception) -> str:
    """One paragraph; an error re-raised from a DataLoader worker carries the worker's traceback."""
    text = str(err)
    if "Original Traceback" in text:
        text = text.strip().splitlines()[-1].split(": ", 1)[-1]
    return text
