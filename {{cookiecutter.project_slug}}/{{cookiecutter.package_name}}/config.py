"""Config schema, YAML loading, dotted `key=value` overrides and validation.

Every knob lives in one dataclass tree; `configs/default.yaml` mirrors it with comments.
Errors are `ConfigError`s whose message names the bad key or value and what is valid.
"""

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# YAML 1.1 reads 1e-3 (no dot) as a string; accept it where a float is expected.
FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")

# The sample data is written here on first use; any other missing root is an error.
SAMPLE_DATA_ROOT = "data/sample"


class ConfigError(ValueError):
    """A bad config file, key or value; the message says what is valid."""


def choice(default, *choices):
    """A string field restricted to `choices` (checked by `validate`)."""
    return field(default=default, metadata={"choices": choices})


def list_field(*values):
    return field(default_factory=lambda: list(values))


@dataclass
class DataConfig:
    root: str = SAMPLE_DATA_ROOT
    # Used only when there is no val split on disk: a seeded share of train becomes val.
    val_fraction: float = 0.2
    batch_size: int = 64
    num_workers: int = {{ 2 if cookiecutter.dataset_type == "image_folder" else 0 }}
{% if cookiecutter.gpu != "none" %}
    # Page-locked host memory makes host->GPU copies faster and lets them overlap compute.
    pin_memory: bool = True
{% endif %}
{% if cookiecutter.dataset_type == "image_folder" %}
    image_size: int = 64
    # Images are converted to this PIL mode explicitly (RGB: 3 channels, L: 1 channel).
    image_mode: str = choice("RGB", "RGB", "L")
    mean: list[float] = list_field(0.5, 0.5, 0.5)
    std: list[float] = list_field(0.25, 0.25, 0.25)
    # Random horizontal flip on train images; validation is never augmented.
    augment: bool = True
{% else %}
    label_column: str = "label"
{% endif %}


@dataclass
class ModelConfig:
{% if cookiecutter.dataset_type == "image_folder" %}
    name: str = "simple_cnn"  # a key of models.MODELS: simple_cnn | resnet18
    # simple_cnn: output channels of each conv block (each block halves H and W).
    channels: list[int] = list_field(16, 32, 64)
{% else %}
    name: str = "mlp"  # a key of models.MODELS
    hidden_sizes: list[int] = list_field(64, 64)
{% endif %}
    dropout: float = 0.1
    # default = PyTorch's own (Kaiming-uniform weights, uniform biases).
    init: str = choice(
        "kaiming_normal",
        "default",
        "kaiming_normal",
        "kaiming_uniform",
        "xavier_normal",
        "xavier_uniform",
        "orthogonal",
    )
    # Parameter-name patterns (fnmatch) to freeze, e.g. ["features.block1.*"].
    freeze: list[str] = field(default_factory=list)


@dataclass
class OptimConfig:
    name: str = choice("adamw", "adamw", "sgd")
    lr: float = 0.003
    weight_decay: float = 0.01
    momentum: float = 0.9
    scheduler: str = choice("cosine", "cosine", "step", "none")
    step_size: int = 10
    gamma: float = 0.1


@dataclass
class TrainerConfig:
    epochs: int = 8
    device: str = "auto"
{% if cookiecutter.gpu != "none" %}
    amp: bool = True
    amp_dtype: str = choice("auto", "auto", "bfloat16", "float16")
{% if cookiecutter.dataset_type == "image_folder" %}
    channels_last: bool = True
{% endif %}
    cudnn_benchmark: bool = True
{% endif %}
    grad_clip_norm: float = 0.0
    early_stopping_patience: int = 0
    monitor: str = choice("val_acc", "val_acc", "val_loss")
    log_interval: int = 20
    progress_bar: bool = True
    deterministic: bool = False


@dataclass
class Config:
    seed: int = 42
    output_dir: str = "runs"
    # Empty: a timestamp. An existing run dir is never reused (use --resume for that).
    run_name: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def load_config(path=None, overrides=(), base: dict | None = None) -> Config:
    """Defaults <- `base` dict (e.g. a checkpoint's config) <- YAML file <- overrides."""
    cfg = Config()
    if base is not None:
        _merge(cfg, base, "")
    if path is not None:
        _merge(cfg, _read_yaml(Path(path)), "")
    for item in overrides:
        key, value = _parse_override(item)
        _set(cfg, key, value)
    validate(cfg)
    return cfg


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
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


def _parse_override(item: str) -> tuple[str, object]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r} must look like key=value, e.g. trainer.epochs=5")
    try:
        # YAML scalars: 5 -> int, 1e-3 -> float, true -> bool, [1, 2] -> list.
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def all_keys(obj=None, prefix="") -> list[str]:
    obj = Config() if obj is None else obj
    keys = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            keys += all_keys(value, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _unknown_key(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, all_keys(), n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}?" if close else "valid keys: " + ", ".join(all_keys())
    return ConfigError(f"unknown config key {key!r}; {hint}")


def _merge(obj, data: dict, prefix: str) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"config key {prefix.rstrip('.')!r} must be a mapping, got {data!r}")
    for name, value in data.items():
        _set(obj, f"{prefix}{name}", value, obj_prefix=prefix)


def _set(obj, key: str, value, obj_prefix: str = "") -> None:
    """Set dotted `key` (relative to `obj`, full name `obj_prefix + key`)."""
    parts = key[len(obj_prefix) :].split(".")
    for i, part in enumerate(parts):
        names = {f.name for f in dataclasses.fields(obj)}
        if part not in names:
            raise _unknown_key(key)
        current = getattr(obj, part)
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(current):
                _merge(current, value, f"{key}.")
            else:
                hint = typing.get_type_hints(type(obj))[part]
                setattr(obj, part, _coerce(key, value, hint))
        elif not dataclasses.is_dataclass(current):
            raise _unknown_key(key)
        else:
            obj = current


def _coerce(key: str, value, hint):
    """Check `value` against the field's type; ints are accepted where floats are."""
    origin = typing.get_origin(hint)
    if origin is list:
        (item_type,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise _type_error(key, value, f"a list of {item_type.__name__}")
        return [_coerce(f"{key}[{i}]", v, item_type) for i, v in enumerate(value)]
    if hint is float and isinstance(value, str) and FLOAT_TEXT.fullmatch(value.strip()):
        return float(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # e.g. run_name=2024
    if (hint is int and isinstance(value, bool)) or not isinstance(value, hint):
        raise _type_error(key, value, hint.__name__)
    return value


def _type_error(key, value, expected) -> ConfigError:
    return ConfigError(f"config key {key!r} = {value!r} has type {type(value).__name__}; expected {expected}")


def validate(cfg: Config) -> None:
    """Choices and ranges that types alone cannot express."""
    for key in all_keys():
        obj, name = _owner(cfg, key)
        choices = {f.name: f for f in dataclasses.fields(obj)}[name].metadata.get("choices")
        value = getattr(obj, name)
        if choices and value not in choices:
            raise ConfigError(f"config key {key!r} = {value!r} is not one of: {', '.join(choices)}")
    positive = ["data.batch_size", "trainer.epochs", "trainer.log_interval"]
{% if cookiecutter.dataset_type == "image_folder" %}
    positive.append("data.image_size")
{% endif %}
    for key in positive:
        obj, name = _owner(cfg, key)
        if getattr(obj, name) <= 0:
            raise ConfigError(f"config key {key!r} = {getattr(obj, name)!r} must be > 0")
    for key in ["data.num_workers", "trainer.grad_clip_norm", "trainer.early_stopping_patience", "optim.weight_decay"]:
        obj, name = _owner(cfg, key)
        if getattr(obj, name) < 0:
            raise ConfigError(f"config key {key!r} = {getattr(obj, name)!r} must be >= 0")
    if not 0.0 < cfg.data.val_fraction < 1.0:
        raise ConfigError(f"config key 'data.val_fraction' = {cfg.data.val_fraction!r} must be between 0 and 1")
    if cfg.optim.lr <= 0:
        raise ConfigError(f"config key 'optim.lr' = {cfg.optim.lr!r} must be > 0")
{% if cookiecutter.dataset_type == "image_folder" %}
    channels = 3 if cfg.data.image_mode == "RGB" else 1
    for key in ["mean", "std"]:
        if len(getattr(cfg.data, key)) != channels:
            raise ConfigError(
                f"config key 'data.{key}' = {getattr(cfg.data, key)!r} needs {channels} values "
                f"for data.image_mode={cfg.data.image_mode!r}"
            )
    if any(s <= 0 for s in cfg.data.std):
        raise ConfigError(f"config key 'data.std' = {cfg.data.std!r} must be all > 0")
{% endif %}
    device = cfg.trainer.device
    if device not in ("auto", "cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ConfigError(f"config key 'trainer.device' = {device!r} is not one of: auto, cpu, cuda, cuda:N")
    if "/" in cfg.run_name or cfg.run_name in (".", ".."):
        raise ConfigError(f"config key 'run_name' = {cfg.run_name!r} must be a plain folder name")


def _owner(cfg: Config, key: str):
    *parents, name = key.split(".")
    obj = cfg
    for part in parents:
        obj = getattr(obj, part)
    return obj, name


def save_config(cfg: Config, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
