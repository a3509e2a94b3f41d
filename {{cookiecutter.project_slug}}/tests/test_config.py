"""Config: configs/default.yaml is the schema; a YAML file and overrides change it, with clear errors."""

import re
from pathlib import Path

import pytest
import torch.nn as nn  # regression
import yaml
from tiny_data import MODEL_WIDTH_KEY

import train
from {{ cookiecutter.package_name }}.config import ConfigError, all_keys, default_choices, load_config, to_dict
from {{ cookiecutter.package_name }}.data import DataError, build_dataloaders
from {{ cookiecutter.package_name }}.device import setup_device
from {{ cookiecutter.package_name }}.engine import Trainer, build_optimizer, build_scheduler
from {{ cookiecutter.package_name }}.errors import run_main
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.task import MONITORS, OTHER_TASKS_KEYS, build_criterion

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_DIR / "configs" / "default.yaml"
PACKAGE_DIR = PROJECT_DIR / "{{ cookiecutter.package_name }}"


def get(cfg, key: str):
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def config_error(*overrides, path=DEFAULT_CONFIG) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(path, list(overrides))
    return str(err.value)


def test_defaults_are_the_values_of_default_yaml():
    defaults = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    assert to_dict(load_config()) == defaults
    assert load_config(DEFAULT_CONFIG) == load_config()
    assert load_config().trainer.epochs == defaults["trainer"]["epochs"]  # sections are attributes


def test_yaml_file_and_overrides_merge(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("seed: 7\ntrainer:\n  epochs: 5\n  monitor: val_loss\ndata:\n  batch_size: 12\n")
    cfg = load_config(path, ["trainer.epochs=2", "optim.name=sgd"])
    assert (cfg.seed, cfg.trainer.monitor, cfg.data.batch_size, cfg.optim.name) == (7, "val_loss", 12, "sgd")
    assert cfg.trainer.epochs == 2  # the override wins over the file
    assert cfg.optim.lr == load_config().optim.lr  # untouched keys keep their defaults
    assert cfg.trainer.device == load_config().trainer.device


def test_base_then_file_then_overrides(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("trainer:\n  epochs: 5\n")
    base = to_dict(load_config())
    base["trainer"]["epochs"], base["seed"] = 9, 3
    assert load_config(base=base).trainer.epochs == 9
    assert (load_config(path, base=base).trainer.epochs, load_config(path, base=base).seed) == (5, 3)
    assert load_config(path, ["trainer.epochs=1"], base=base).trainer.epochs == 1


def test_empty_yaml_file_gives_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set\n")
    assert load_config(path) == load_config()


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("trainer.epochs=3", "trainer.epochs", 3),
        ("optim.lr=0.01", "optim.lr", 0.01),
        ("optim.lr=1e-3", "optim.lr", 0.001),
        ("optim.lr=2.5E-4", "optim.lr", 0.00025),
        ("optim.lr=2", "optim.lr", 2.0),  # an int is fine where a float is expected
        ("trainer.deterministic=true", "trainer.deterministic", True),
        ("trainer.progress_bar=false", "trainer.progress_bar", False),
        ("model.freeze=[features.*, head.bias]", "model.freeze", ["features.*", "head.bias"]),
        (f"{MODEL_WIDTH_KEY}=[8, 16, 4]", MODEL_WIDTH_KEY, [8, 16, 4]),
        ("run_name=2024", "run_name", "2024"),  # a number where a string is expected stays text
        ("run_name=", "run_name", ""),
        ("data.root=/data/x y", "data.root", "/data/x y"),
        ("data.preload=false", "data.preload", "false"),  # YAML's false, for a text choice
        ("data.preload=cpu", "data.preload", "cpu"),
    ],
)
def test_overrides_are_parsed_as_yaml_scalars(override, key, expected):
    value = get(load_config(DEFAULT_CONFIG, [override]), key)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("override", "unknown", "suggestion"),
    [
        ("trainer.epoch=1", "trainer.epoch", "trainer.epochs"),
        ("data.batchsize=8", "data.batchsize", "data.batch_size"),
        ("optim.weight_decy=0.1", "optim.weight_decy", "optim.weight_decay"),
    ],
)
def test_unknown_key_names_it_and_the_closest_valid_key(override, unknown, suggestion):
    message = config_error(override)
    assert f"'{unknown}'" in message
    assert f"'{suggestion}'" in message


def test_a_key_below_a_value_is_an_error():
    message = config_error("trainer.epochs.max=3")
    assert "'trainer.epochs'" in message and "max" in message


def test_unknown_section_names_it_and_lists_valid_keys():
    message = config_error("foo.bar=1")
    assert re.search(r"unknown config key 'foo(\.bar)?'", message), message
    assert "trainer.epochs" in message and "data.batch_size" in message


def test_unknown_key_in_a_yaml_file(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("trainer:\n  epoch: 3\n")
    message = config_error(path=path)
    assert "'trainer.epoch'" in message and "'trainer.epochs'" in message
    path.write_text("trainers:\n  epochs: 3\n")
    message = config_error(path=path)
    assert "'trainers'" in message and "trainer" in message.replace("'trainers'", "")


def test_a_section_given_a_scalar_is_an_error():
    message = config_error("data=3")
    assert "'data'" in message and "mapping" in message


@pytest.mark.parametrize(
    ("override", "key", "value", "expected"),
    [
        ("trainer.epochs=abc", "trainer.epochs", "'abc'", "int"),
        ("data.batch_size=1.5", "data.batch_size", "1.5", "int"),
        ("trainer.progress_bar=3", "trainer.progress_bar", "3", "bool"),
        ("trainer.epochs=true", "trainer.epochs", "True", "int"),  # a bool is not an int here
        ("optim.lr=fast", "optim.lr", "'fast'", "float"),
        ("model.freeze=a,b", "model.freeze", "'a,b'", "a list, written [a, b]"),  # model.freeze=a: [a]
        (f"{MODEL_WIDTH_KEY}=[8, 1.5]", f"{MODEL_WIDTH_KEY}[1]", "1.5", "int"),
    ],
)
def test_wrong_type_names_key_value_and_expected_type(override, key, value, expected):
    message = config_error(override)
    assert f"'{key}'" in message
    assert value in message
    assert f"expected {expected}" in message


# ---- choices: `# one of: a | b` comments in default.yaml -------------------------------------------------
CHOICES = sorted(default_choices().items())


def test_the_choices_comments_are_read():
    choices = default_choices()
    assert choices["optim.name"] == ["adamw", "sgd"]
    assert choices["optim.scheduler"] == ["cosine", "step", "none"]
    assert choices["trainer.monitor"] == list(MONITORS)  # the task's metrics, each with its better way
    assert choices["data.preload"][:2] == ["false", "cpu"]
    for key, valid in choices.items():
        assert key in all_keys() and len(valid) >= 2, (key, valid)
        assert get(load_config(), key) in valid, f"{key}: the default is not one of its choices"


@pytest.mark.parametrize(("key", "valid"), CHOICES, ids=[key for key, _ in CHOICES])
@pytest.mark.parametrize("value", ["nope", "true"])  # `true` parses as a bool: still named as text
def test_choices_list_the_valid_values(key, valid, value):
    if value in valid:  # a bool read as its text where that is a choice (model.reset_head=true): accepted
        assert get(load_config(overrides=[f"{key}={value}"]), key) == value
        return
    message = config_error(f"{key}={value}")
    assert f"'{key}'" in message and f"'{value}'" in message
    for choice in valid:
        assert choice in message


@pytest.mark.parametrize(
    ("key", "choice"), [(key, choice) for key, valid in CHOICES for choice in valid], ids=lambda x: str(x)
)
def test_every_listed_choice_is_accepted_by_the_code_that_uses_it(make_config, tmp_path, key, choice):
    """Loaded, then everything train.py builds before the first step: a ConfigError here is a stale comment."""
    cfg = make_config(**{key: choice})
    assert get(cfg, key) == choice
    device = setup_device(cfg)
    try:
        train_loader, val_loader, info = build_dataloaders(cfg, device=device)
    except DataError as err:  # e.g. another torchvision dataset: the tiny data has only one
        assert "not one of" not in str(err)
        return
    except ConfigError as err:  # a choice for hardware this machine lacks: said so, by name
        assert f"'{key}' = '{choice}' needs" in str(err) and "there is none here" in str(err)
        return
    model = build_model(cfg, info)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    criterion = build_criterion(cfg, info)
    Trainer(cfg, model, criterion, optimizer, scheduler, train_loader, val_loader, info, tmp_path / "run", device)


def test_every_key_of_default_yaml_is_read_by_the_code():
    """A key no code reads is a setting that silently does nothing."""
    sources = [*PACKAGE_DIR.rglob("*.py"), *PROJECT_DIR.glob("*.py")]
    code = "\n".join(p.read_text(encoding="utf-8") for p in sources if p.name != "config.py")
    unread = [key for key in all_keys() if not re.search(rf"\.{key.split('.')[-1]}\b", code)]
    assert unread == [], f"keys in default.yaml that no code reads: {unread}"


# ---- the task's own keys; another task's are refused, saying why ----------------------------------------
@pytest.mark.parametrize("key", sorted(OTHER_TASKS_KEYS))
def test_a_key_of_the_other_task_is_refused_saying_why(key, tmp_path):
    assert key not in all_keys()
    section, name = key.split(".")
    (tmp_path / "mine.yaml").write_text(f"{section}:\n  {name}: 0.1\n")
    for message in (config_error(f"{key}=0.1"), config_error(path=tmp_path / "mine.yaml")):
        assert f"'{key}'" in message and OTHER_TASKS_KEYS[key] in message and "did you mean" not in message


def test_the_loss_keys_are_the_task_s_own():
    cfg = load_config(overrides=["trainer.loss=huber"])  # regression
    assert cfg.trainer.loss == "huber" and isinstance(build_criterion(cfg, {}), nn.HuberLoss)  # regression
    assert "trainer.label_smoothing" in OTHER_TASKS_KEYS  # regression
    cfg = load_config(overrides=["trainer.label_smoothing=0.1"])  # classification
    assert build_criterion(cfg, {}).label_smoothing == 0.1 and "trainer.loss" in OTHER_TASKS_KEYS  # classification
    cfg = load_config(overrides=["trainer.class_weights=balanced"])  # multilabel
    criterion = build_criterion(cfg, {"label_counts": [1, 3], "train_samples": 4})  # multilabel
    assert criterion.pos_weight.tolist() == pytest.approx([3.0, 1 / 3])  # negatives / positives per label  # multilabel
    assert {"trainer.loss", "trainer.label_smoothing"} <= set(OTHER_TASKS_KEYS)  # multilabel


# ---- ranges -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override",
    [
        "data.batch_size=0",
        "trainer.epochs=0",
        "trainer.log_interval=-1",
        "trainer.accumulate_steps=0",
        "optim.lr=0",
        "optim.weight_decay=-0.1",
        "data.val_fraction=0",
        "data.val_fraction=1.5",
        "data.num_workers=-1",
        "trainer.grad_clip_norm=-1",
        "trainer.early_stopping_patience=-2",
        "run_name=a/b",
        "run_name=..",
        "data.preload_memory_fraction=0",
        "data.preload_memory_fraction=1.5",
        "optim.warmup_epochs=-1",
        "model.freeze_backbone_epochs=-1",
        "optim.backbone_lr_scale=-0.5",
        "trainer.label_smoothing=1",  # classification
        "trainer.label_smoothing=-0.1",  # classification
        "trainer.ema_decay=1",
        "trainer.ema_decay=-0.1",
    ],
)
def test_out_of_range_values_name_the_key(override):
    key = override.partition("=")[0]
    assert f"'{key}'" in config_error(override)


# ---- malformed input ----------------------------------------------------------------------------------
def test_override_without_equals_sign():
    message = config_error("trainer.epochs")
    assert "'trainer.epochs'" in message and "key=value" in message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("seed: 1\ndata:\n  batch_size: 8\n bad_indent: 1\n", 4),
        ("seed: 1\ntrainer:\n  epochs: 3\n\tdevice: cpu\n", 4),
    ],
)
def test_malformed_yaml_names_the_file_and_line(tmp_path, text, line):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    message = config_error(path=path)
    assert str(path) in message and f"line {line}" in message


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    message = config_error(path=path)
    assert str(path) in message and "mapping" in message


def test_missing_config_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert str(path) in config_error(path=path)


def test_cli_reports_a_config_error_in_one_line(tmp_path, capsys):
    assert run_main(train.main, ["trainer.epoch=1", f"output_dir={tmp_path / 'runs'}"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "'trainer.epoch'" in line and "'trainer.epochs'" in line
    assert not (tmp_path / "runs").exists()  # a bad setting leaves nothing behind
