"""Config: defaults, YAML file + overrides, YAML-scalar parsing, and clear errors for bad keys, types and files."""

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import Config, ConfigError, load_config, to_dict

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"
{% if cookiecutter.dataset_type != "tabular_csv" %}
INT_LIST_KEY = "model.channels"
{% else %}
INT_LIST_KEY = "model.hidden_sizes"
{% endif %}


def get(cfg: Config, key: str):
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def config_error(*overrides, path=DEFAULT_CONFIG) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(path, list(overrides))
    return str(err.value)


def test_default_yaml_mirrors_the_schema_defaults():
    assert to_dict(load_config(DEFAULT_CONFIG)) == to_dict(Config())
    assert load_config() == Config()


def test_yaml_file_and_overrides_merge(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("seed: 7\ntrainer:\n  epochs: 5\n  monitor: val_loss\ndata:\n  batch_size: 12\n")
    cfg = load_config(path, ["trainer.epochs=2", "optim.name=sgd"])
    assert cfg.seed == 7
    assert cfg.trainer.epochs == 2  # the override wins over the file
    assert cfg.trainer.monitor == "val_loss"
    assert cfg.data.batch_size == 12
    assert cfg.optim.name == "sgd"
    assert cfg.optim.lr == Config().optim.lr  # untouched keys keep their defaults
    assert cfg.trainer.device == Config().trainer.device


def test_base_then_file_then_overrides(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("trainer:\n  epochs: 5\n")
    base = to_dict(Config())
    base["trainer"]["epochs"] = 9
    base["seed"] = 3
    assert load_config(path, base=base).trainer.epochs == 5
    assert load_config(path, base=base).seed == 3
    assert load_config(path, ["trainer.epochs=1"], base=base).trainer.epochs == 1


def test_empty_yaml_file_gives_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set\n")
    assert load_config(path) == Config()


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
        (f"{INT_LIST_KEY}=[8, 16, 4]", INT_LIST_KEY, [8, 16, 4]),
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
        ("trainer.epochs.max=3", "trainer.epochs.max", "trainer.epochs"),
    ],
)
def test_unknown_key_names_it_and_the_closest_valid_key(override, unknown, suggestion):
    message = config_error(override)
    assert f"'{unknown}'" in message
    assert f"'{suggestion}'" in message


def test_unknown_section_names_it_and_lists_valid_keys():
    message = config_error("foo.bar=1")
    assert "'foo.bar'" in message
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
        ("model.freeze=abc", "model.freeze", "'abc'", "a list of str"),
        (f"{INT_LIST_KEY}=[8, 1.5]", f"{INT_LIST_KEY}[1]", "1.5", "int"),
    ],
)
def test_wrong_type_names_key_value_and_expected_type(override, key, value, expected):
    message = config_error(override)
    assert f"'{key}'" in message
    assert value in message
    assert f"expected {expected}" in message


@pytest.mark.parametrize(
    ("override", "valid"),
    [
        ("optim.name=adam", ["adamw", "sgd"]),
        ("optim.scheduler=linear", ["cosine", "step", "none"]),
        ("trainer.monitor=acc", ["val_acc", "val_loss"]),
        ("model.init=he", ["default", "kaiming_normal", "orthogonal"]),
        ("data.preload=gpu", ["false", "cpu", "device"]),
        ("data.preload=true", ["false", "cpu", "device"]),
    ],
)
def test_choices_list_the_valid_values(override, valid):
    key, _, value = override.partition("=")
    message = config_error(override)
    assert f"'{key}'" in message and f"'{value}'" in message
    for choice in valid:
        assert choice in message


@pytest.mark.parametrize(
    "override",
    [
        "data.batch_size=0",
        "trainer.epochs=0",
        "trainer.log_interval=-1",
        "optim.lr=0",
        "optim.weight_decay=-0.1",
        "data.val_fraction=0",
        "data.val_fraction=1.5",
        "data.num_workers=-1",
        "trainer.grad_clip_norm=-1",
        "trainer.early_stopping_patience=-2",
        "trainer.device=gpu",
        "trainer.device=cuda:x",
        "run_name=a/b",
        "run_name=..",
{% if cookiecutter.dataset_type != "tabular_csv" %}
        "data.image_size=0",
        "data.std=[0.25, 0, 0.25]",
        "data.mean=[0.5, 0.5]",
        "data.stats_images=0",
        "data.crop_scale=[0.5]",
        "data.crop_scale=[0.9, 0.5]",
        "data.crop_scale=[0, 1]",
{% endif %}
        "data.preload_memory_fraction=0",
        "data.preload_memory_fraction=1.5",
{% if cookiecutter.use_prefetch %}
        "data.prefetch_batches=-1",
{% endif %}
    ],
)
def test_out_of_range_values_name_the_key(override):
    key = override.partition("=")[0]
    assert f"'{key}'" in config_error(override)
{% if cookiecutter.dataset_type != "tabular_csv" %}


def test_mean_and_std_need_one_value_per_channel():
    message = config_error("data.image_mode=L", "data.mean=[0.5, 0.5, 0.5]", "data.std=[0.2, 0.2, 0.2]")
    assert "'data.mean'" in message and "'L'" in message
    assert "set both or neither" in config_error("data.mean=[0.5]")
    cfg = load_config(DEFAULT_CONFIG, ["data.image_mode=L", "data.mean=[0.5]", "data.std=[0.25]"])
    assert cfg.data.image_mode == "L" and cfg.data.mean == [0.5]
    assert load_config(DEFAULT_CONFIG).data.mean == []  # empty: the default normalisation
{% endif %}


def test_valid_devices_are_accepted():
    for device in ["auto", "cpu", "cuda", "cuda:1"]:
        assert load_config(DEFAULT_CONFIG, [f"trainer.device={device}"]).trainer.device == device


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
    assert str(path) in message
    assert f"line {line}" in message


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    message = config_error(path=path)
    assert str(path) in message and "mapping" in message


def test_missing_config_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert str(path) in config_error(path=path)


def test_cli_reports_a_config_error_without_traceback(tmp_path, run_script):
    proc = run_script("train.py", "trainer.epoch=1", f"output_dir={tmp_path / 'runs'}")
    assert proc.returncode != 0
    assert "'trainer.epoch'" in proc.stderr and "'trainer.epochs'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # a bad setting leaves nothing behind
