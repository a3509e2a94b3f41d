"""Device choice: this project runs on the CPU, or on Apple's MPS where there is one."""

import logging

import pytest
import torch

import train
from {{ cookiecutter.package_name }}.config import ConfigError
from {{ cookiecutter.package_name }}.device import free_memory, resolve_device, setup_device


def hardware(monkeypatch, mps: bool) -> None:
    """Pretend this machine has (or lacks) Apple MPS."""
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(("mps", "expected"), [(True, "mps"), (False, "cpu")])
def test_auto_picks_mps_then_the_cpu_and_says_which(monkeypatch, caplog, mps, expected):
    hardware(monkeypatch, mps)
    with caplog.at_level(logging.INFO):
        assert resolve_device("auto") == torch.device(expected)
    assert f"running on {expected.upper()}" in caplog.text


@pytest.mark.parametrize("mps", [True, False])
def test_cpu_is_always_there(monkeypatch, mps):
    hardware(monkeypatch, mps)
    assert resolve_device("cpu") == torch.device("cpu")


def test_mps_is_taken_where_it_exists_and_refused_where_not(monkeypatch):
    hardware(monkeypatch, mps=True)
    assert resolve_device("mps") == torch.device("mps")
    hardware(monkeypatch, mps=False)
    with pytest.raises(ConfigError, match="MPS is not available") as err:
        resolve_device("mps")
    assert "trainer.device=cpu" in str(err.value)  # says what to use instead


@pytest.mark.parametrize("name", ["gpu", "tpu", "cpu:0", "CPU", "mps:1", ""])
def test_invalid_device_names_are_config_errors_naming_the_valid_ones(name):
    with pytest.raises(ConfigError) as err:
        resolve_device(name)
    assert repr(name) in str(err.value) and "auto, cpu, mps" in str(err.value)


def test_setup_device_resolves_trainer_device(make_config, monkeypatch):
    hardware(monkeypatch, mps=False)
    assert setup_device(make_config()) == torch.device("cpu")  # trainer.device=cpu in the fast settings
    assert setup_device(make_config(**{"trainer.device": "auto"})) == torch.device("cpu")
    cfg = make_config(**{"trainer.device": "tpu"})  # loads: the device is checked where it is used
    with pytest.raises(ConfigError, match="'tpu'"):
        setup_device(cfg)


def test_a_bad_device_stops_train_py_before_anything_is_written(tmp_path, cli_overrides):
    with pytest.raises(ConfigError, match="'tpu'"):
        train.main(cli_overrides(run_name="bad", **{"trainer.device": "tpu"}))
    assert not (tmp_path / "runs").exists()


def test_free_memory_is_free_ram():
    free = free_memory(torch.device("cpu"))
    assert free is None or free > 0
