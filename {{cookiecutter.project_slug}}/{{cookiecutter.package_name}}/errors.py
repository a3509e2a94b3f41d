"""The errors that reach the user as one paragraph (train.py, evaluate.py and predict.py print them, no traceback)."""


class ConfigError(ValueError):
    """A bad config file, key or value; the message says what is valid."""


class DataError(ValueError):
    """Missing or malformed data; the message names the file and what was expected."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, unsafe or for another model."""
