"""Config: configs/default.yaml is the schema, a YAML file and `key=value` overrides change it.

Every key, its default and its comment live in configs/default.yaml; a value must keep the
type of its default (ints are accepted where floats are). A comment `# one of: a | b | c`
declares the valid choices. Errors are `ConfigError`s that name the key and what is valid.
"""

import difflib
import re
from pathlib import Path
from types import SimpleNamespace

import yaml

from .errors import ConfigError
from .task import OTHER_TASKS_KEYS
from .utils import atomic_write_text

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"
# YAML 1.1 reads 1e-3 (no dot) as a string; accept it where a float is expected.
FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
CHOICES_COMMENT = re.compile(r"^(\s*)(\w+):.*#\s*one of:\s*([^;]+)")
# Ranges that types alone cannot express; a key this project's default.yaml lacks is skipped.
POSITIVE = ["data.batch_size", "trainer.epochs", "trainer.log_interval", "trainer.accumulate_steps", "optim.lr"]
POSITIVE += ["trainer.keep_checkpoints"]
POSITIVE += ["data.stats_images"]  # images
NON_NEGATIVE = ["data.num_workers", "optim.weight_decay", "optim.warmup_epochs"]
NON_NEGATIVE += ["data.prefetch_batches"]  # use_prefetch
NON_NEGATIVE += ["trainer.grad_clip_norm", "trainer.early_stopping_patience"]
NON_NEGATIVE += ["data.embedding_threshold"]  # tables
NON_NEGATIVE += ["model.freeze_backbone_epochs", "optim.backbone_lr_scale"]
NON_NEGATIVE += ["data.image_size", "data.mixup_alpha", "data.cutmix_alpha"]  # images
NON_NEGATIVE += ["trainer.checkpoint_every_steps", "trainer.checkpoint_every_minutes"]
FRACTIONS = {"data.val_fraction": "between 0 and 1", "data.preload_memory_fraction": "in (0, 1]"}
FRACTIONS["trainer.label_smoothing"] = "in [0, 1)"  # classification
FRACTIONS["data.random_erasing"] = "in [0, 1]"  # images
FRACTIONS["trainer.ema_decay"] = "in [0, 1)"


class Config(SimpleNamespace):
    """A section of the config: keys are attributes (cfg.trainer.epochs)."""


__all__ = ["Config", "ConfigError", "load_config", "save_config", "to_dict", "check_choice"]


def load_config(path=None, overrides=(), base: dict | None = None) -> Config:
    """configs/default.yaml <- `base` dict (e.g. a checkpoint's config) <- YAML file <- overrides."""
    values = _read_yaml(DEFAULT_CONFIG)
    changes = [base or {}, _read_yaml(Path(path)) if path is not None else {}]
    changes += [_parse_override(item) for item in overrides]
    for change in changes:
        values = _merged(values, change, "")
    cfg = _to_config(values)
    validate(cfg, default_choices())
    return cfg


def to_dict(cfg) -> dict:
    return {key: to_dict(value) if isinstance(value, Config) else value for key, value in vars(cfg).items()}


def save_config(cfg: Config, path) -> None:
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def check_choice(key: str, value, choices) -> None:
    """A ConfigError naming `key`, `value` and the valid `choices` unless value is one of them."""
    if value not in choices:
        raise ConfigError(f"config key {key!r} = {value!r} is not one of: {', '.join(map(str, choices))}")


def default_choices() -> dict[str, list[str]]:
    """{"optim.name": ["adamw", "sgd"], ...} from the `# one of:` comments of configs/default.yaml."""
    choices = {}
    section = ""
    for line in DEFAULT_CONFIG.read_text(encoding="utf-8").splitlines():
        if re.match(r"^(\w+):\s*(#.*)?$", line):
            section = line.split(":")[0] + "."
        match = CHOICES_COMMENT.match(line)
        if match:
            indent, name, listed = match.groups()
            choices[(section if indent else "") + name] = [word.strip() for word in listed.split("|")]
    return choices


def validate(cfg: Config, choices: dict) -> None:
    """Choices and ranges that types alone cannot express."""
    for key, valid in choices.items():
        check_choice(key, _get(cfg, key), valid)
    for key in POSITIVE + NON_NEGATIVE + list(FRACTIONS):
        value = _get(cfg, key)
        if value is None:
            continue
        if key in POSITIVE and value <= 0:
            raise ConfigError(f"config key {key!r} = {value!r} must be > 0")
        if key in NON_NEGATIVE and value < 0:
            raise ConfigError(f"config key {key!r} = {value!r} must be >= 0")
        bounds = FRACTIONS.get(key, "")  # "in [0, 1)": 0 allowed; "in (0, 1]": 1 allowed
        ends = (value == 0 and bounds.startswith("in [")) or (value == 1 and bounds.endswith("]"))
        if key in FRACTIONS and not (0 < value < 1 or ends):
            raise ConfigError(f"config key {key!r} = {value!r} must be {FRACTIONS[key]}")
    if "/" in cfg.run_name or cfg.run_name in (".", ".."):
        raise ConfigError(f"config key 'run_name' = {cfg.run_name!r} must be a plain folder name")


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"config file {path}{where}: invalid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(data).__name__}")
    return data


def _parse_override(item: str) -> dict:
    """ "trainer.epochs=5" -> {"trainer": {"epochs": 5}}."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r} must look like key=value, e.g. trainer.epochs=5")
    try:
        # YAML scalars: 5 -> int, 1e-3 -> float, true -> bool, [1, 2] -> list.
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def _merged(into: dict, changes: dict, prefix: str) -> dict:
    """A copy of `into` with `changes` applied; every key and type checked against `into`."""
    if not isinstance(changes, dict):
        raise ConfigError(f"config key {prefix.rstrip('.')!r} must be a mapping, got {changes!r}")
    result = dict(into)
    for name, value in changes.items():
        key = f"{prefix}{name}"
        if name not in into:
            raise _unknown_key(key)
        if isinstance(into[name], dict):
            result[name] = _merged(into[name], value, f"{key}.")
        else:
            result[name] = _coerce(key, value, into[name])
    return result


def _coerce(key: str, value, default):
    """`value` with the type of `default`; ints are accepted where floats are."""
    kind = type(default)
    if kind is list:
        if isinstance(value, dict) or (isinstance(value, str) and "," in value):
            raise _type_error(key, value, "a list, written [a, b]")
        value = value if isinstance(value, list) else [value]  # key=rownames: a list of one
        return [_coerce(f"{key}[{i}]", v, default[0]) for i, v in enumerate(value)] if default else value
    if kind is float and isinstance(value, str) and FLOAT_TEXT.fullmatch(value.strip()):
        return float(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, bool):
        return str(value).lower()  # YAML's false, e.g. data.preload=false
    if kind is str and isinstance(value, (int, float)):
        return str(value)  # e.g. run_name=2024
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise _type_error(key, value, kind.__name__)
    return value


def _type_error(key, value, expected) -> ConfigError:
    return ConfigError(f"config key {key!r} = {value!r} has type {type(value).__name__}; expected {expected}")


def all_keys(values: dict | None = None, prefix: str = "") -> list[str]:
    values = _read_yaml(DEFAULT_CONFIG) if values is None else values
    keys = []
    for name, value in values.items():
        keys += all_keys(value, f"{prefix}{name}.") if isinstance(value, dict) else [f"{prefix}{name}"]
    return keys


def _unknown_key(key: str) -> ConfigError:
    if key in OTHER_TASKS_KEYS:  # a key of another task: say why it is not this one's
        return ConfigError(f"config key {key!r} does not apply here: {OTHER_TASKS_KEYS[key]}")
    close = difflib.get_close_matches(key, all_keys(), n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}?" if close else "valid keys: " + ", ".join(all_keys())
    return ConfigError(f"unknown config key {key!r}; {hint}")


def _to_config(values: dict) -> Config:
    return Config(**{k: _to_config(v) if isinstance(v, dict) else v for k, v in values.items()})


def _get(cfg: Config, key: str):
    """The value at dotted `key`; None where this project has no such key."""
    for part in key.split("."):
        cfg = getattr(cfg, part, None)
    return cfg
