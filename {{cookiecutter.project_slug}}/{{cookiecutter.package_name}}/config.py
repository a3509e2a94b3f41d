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
{% if cookiecutter.dataset_type == "torchvision" %}
    # torchvision keeps its files under <root>/<name>/ (MNIST family) or <root>/cifar-10-batches-py/.
    root: str = "data"
    name: str = choice("MNIST", "MNIST", "FashionMNIST", "CIFAR10")
    download: bool = True
{% else %}
    root: str = SAMPLE_DATA_ROOT
{% endif %}
{% if cookiecutter.dataset_type == "image_list" %}
    # File lists under root: `relative/path label` per line (.txt) or a `path,label` header (.csv).
    train_list: str = "train.txt"
    val_list: str = "val.txt"
{% endif %}
    # Used only when there is no val split on disk: a seeded share of train becomes val.
    val_fraction: float = 0.2
    batch_size: int = 64
    num_workers: int = {{ 0 if cookiecutter.dataset_type == "tabular_csv" else 2 }}
{% if cookiecutter.gpu != "none" %}
    # Page-locked host memory makes host->GPU copies faster and lets them overlap compute.
    pin_memory: bool = True
{% endif %}
    # false: read lazily | cpu: decode once into RAM | device: into GPU memory (batches by indexing).
    preload: str = choice("false", "false", "cpu", "device")
    # Refuse to preload more than this share of the free RAM (or GPU memory).
    preload_memory_fraction: float = 0.5
{% if cookiecutter.use_prefetch %}
    # Batches prepared ahead of the training step by a bounded prefetcher (0: off).
    prefetch_batches: int = 2
{% endif %}
{% if cookiecutter.dataset_type != "tabular_csv" %}
    image_size: int = {{ 32 if cookiecutter.dataset_type == "torchvision" else 64 }}
{% if cookiecutter.dataset_type == "torchvision" %}
    # auto: the dataset's own channels (L for the MNIST family, RGB for CIFAR10).
    image_mode: str = choice("auto", "auto", "RGB", "L")
{% else %}
    # Images are converted to this PIL mode explicitly (RGB: 3 channels, L: 1 channel).
    image_mode: str = choice("RGB", "RGB", "L")
{% endif %}
    # Empty: {{ "the dataset's published values" if cookiecutter.dataset_type == "torchvision" else "computed from the train images" }}.
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    # Train images sampled (seeded) when mean/std are computed.
    stats_images: int = 1000
    # Train-only augmentation; validation transforms are deterministic.
    random_resized_crop: bool = True
    crop_scale: list[float] = list_field({{ "0.8" if cookiecutter.dataset_type == "torchvision" else "0.6" }}, 1.0)
    horizontal_flip: bool = {{ "False" if cookiecutter.dataset_type == "torchvision" else "True" }}
    # Log and skip unreadable images (counted per epoch) instead of stopping with an error.
    skip_corrupt: bool = False
{% else %}
    label_column: str = "label"
{% endif %}


@dataclass
class ModelConfig:
{% if cookiecutter.dataset_type != "tabular_csv" %}
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
{% if cookiecutter.dataset_type != "tabular_csv" %}
    channels_last: bool = True
{% endif %}
    cudnn_benchmark: bool = True
    # float32 matmuls: highest (exact fp32) | high (TF32 on Ampere+) | medium (bf16).
    matmul_precision: str = choice("high", "highest", "high", "medium")
{% endif %}
{% if cookiecutter.gpu == "multi" %}
    # Under torchrun: BatchNorm statistics over all GPUs' batches (slower, helps small per-GPU batches).
    sync_batchnorm: bool = False
{% endif %}
{% if cookiecutter.use_tensorboard %}
    # Per-epoch scalars and the model graph in <run_dir>/tensorboard (needs the tensorboard package).
    tensorboard: bool = True
{% endif %}
    # torch.compile the model (first steps are slow while it compiles).
    compile: bool = False
    # Batches whose gradients add up before one optimizer step (effective batch = batch_size x this).
    accumulate_steps: int = 1
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
    if hint is str and isinstance(value, bool):
        return str(value).lower()  # YAML's false, e.g. data.preload=false
    if hint is str and isinstance(value, (int, float)):
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
    positive = ["data.batch_size", "trainer.epochs", "trainer.log_interval", "trainer.accumulate_steps"]
{% if cookiecutter.dataset_type != "tabular_csv" %}
    positive += ["data.image_size", "data.stats_images"]
{% endif %}
    for key in positive:
        obj, name = _owner(cfg, key)
        if getattr(obj, name) <= 0:
            raise ConfigError(f"config key {key!r} = {getattr(obj, name)!r} must be > 0")
    non_negative = ["data.num_workers", "trainer.grad_clip_norm", "trainer.early_stopping_patience"]
    non_negative.append("optim.weight_decay")
{% if cookiecutter.use_prefetch %}
    non_negative.append("data.prefetch_batches")
{% endif %}
    for key in non_negative:
        obj, name = _owner(cfg, key)
        if getattr(obj, name) < 0:
            raise ConfigError(f"config key {key!r} = {getattr(obj, name)!r} must be >= 0")
    if not 0.0 < cfg.data.val_fraction < 1.0:
        raise ConfigError(f"config key 'data.val_fraction' = {cfg.data.val_fraction!r} must be between 0 and 1")
    if cfg.optim.lr <= 0:
        raise ConfigError(f"config key 'optim.lr' = {cfg.optim.lr!r} must be > 0")
    if not 0.0 < cfg.data.preload_memory_fraction <= 1.0:
        raise ConfigError(
            f"config key 'data.preload_memory_fraction' = {cfg.data.preload_memory_fraction!r} must be in (0, 1]"
        )
{% if cookiecutter.dataset_type != "tabular_csv" %}
    _validate_images(cfg.data)
{% endif %}
    device = cfg.trainer.device
    if device not in ("auto", "cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ConfigError(f"config key 'trainer.device' = {device!r} is not one of: auto, cpu, cuda, cuda:N")
    if "/" in cfg.run_name or cfg.run_name in (".", ".."):
        raise ConfigError(f"config key 'run_name' = {cfg.run_name!r} must be a plain folder name")


{% if cookiecutter.dataset_type != "tabular_csv" %}
def _validate_images(data: DataConfig) -> None:
{% if cookiecutter.dataset_type == "torchvision" %}
    native = 3 if data.name == "CIFAR10" else 1
    channels = {"RGB": 3, "L": 1}.get(data.image_mode, native)
{% else %}
    channels = 3 if data.image_mode == "RGB" else 1
{% endif %}
    if bool(data.mean) != bool(data.std):
        raise ConfigError(f"config keys 'data.mean' = {data.mean!r} and 'data.std' = {data.std!r}: set both or neither")
    for key in ["mean", "std"]:
        values = getattr(data, key)
        if values and len(values) != channels:
            raise ConfigError(
                f"config key 'data.{key}' = {values!r} needs {channels} values for data.image_mode={data.image_mode!r} "
                "(or [] to use the default)"
            )
    if any(s <= 0 for s in data.std):
        raise ConfigError(f"config key 'data.std' = {data.std!r} must be all > 0")
    low_high = data.crop_scale
    if len(low_high) != 2 or not 0.0 < low_high[0] <= low_high[1] <= 1.0:
        raise ConfigError(f"config key 'data.crop_scale' = {low_high!r} must be [low, high] with 0 < low <= high <= 1")


{% endif %}
def _owner(cfg: Config, key: str):
    *parents, name = key.split(".")
    obj = cfg
    for part in parents:
        obj = getattr(obj, part)
    return obj, name


def save_config(cfg: Config, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
