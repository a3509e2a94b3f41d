"""The errors that reach the user as one paragraph: `run_main` prints them, no traceback, exit code 2."""

import sys


class ConfigError(ValueError):
    """A bad config file, key or value; the message says what is valid."""


class DataError(ValueError):
    """Missing or malformed data; the message names the file and what was expected."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, unsafe or for another model."""


class ExportError(RuntimeError):
    """A model that cannot be exported, or whose export does not compute what the model does."""


USER_ERRORS = (ConfigError, DataError, CheckpointError, ExportError, FloatingPointError)


def error_message(err: Exception) -> str:
    """One paragraph; an error re-raised from a DataLoader worker carries the worker's traceback."""
    text = str(err)
    if "Original Traceback" in text:
        text = text.strip().splitlines()[-1].split(": ", 1)[-1]
    return text


def run_main(main, argv=None, prefix: str = "error") -> int:
    """`main(argv)`'s exit code; a user error becomes one `error: ...` line on stderr and exit code 2."""
    try:
        return main(argv)
    except USER_ERRORS as err:
        print(f"{prefix}: {error_message(err)}", file=sys.stderr)
        return 2
