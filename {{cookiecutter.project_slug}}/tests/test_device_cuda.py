"""Device choice, AMP, channels_last and the other CUDA settings (their CPU-testable parts, and the rest on CUDA)."""

import csv
import json
import logging
import math
from functools import partial

import pytest
import torch
from test_data import val_inputs
from test_preload import CPU_PRELOAD
from test_train import make_trainer, read_metrics

import evaluate
import predict
import train
from {{ cookiecutter.package_name }} import device as device_module
from {{ cookiecutter.package_name }} import engine
from {{ cookiecutter.package_name }}.config import ConfigError
from {{ cookiecutter.package_name }}.data import build_dataloaders, loaders
from {{ cookiecutter.package_name }}.data.preload import PreloadedLoader
from {{ cookiecutter.package_name }}.device import amp_dtype, resolve_device, setup_device
from {{ cookiecutter.package_name }}.engine import build_optimizer, prepare_model
from {{ cookiecutter.package_name }}.models import build_model

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def hardware(monkeypatch, cuda: bool, mps: bool = False, count: int = 1) -> None:
    """Pretend this machine has (or lacks) CUDA devices and Apple MPS."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count if cuda else 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


# ---- which device ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cuda", "mps", "expected"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_auto_picks_cuda_then_mps_then_the_cpu_and_says_which(monkeypatch, caplog, cuda, mps, expected):
    hardware(monkeypatch, cuda, mps)
    with caplog.at_level(logging.INFO):
        assert resolve_device("auto") == torch.device(expected)
    assert f"running on {expected.upper()}" in caplog.text


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:1", "mps"])
def test_named_devices_that_exist_are_taken(monkeypatch, name):
    hardware(monkeypatch, cuda=True, mps=True, count=2)
    assert resolve_device(name) == torch.device(name)


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda:", "cuda:x", "CPU", ""])
def test_invalid_device_names_are_config_errors_naming_the_valid_ones(name):
    with pytest.raises(ConfigError) as err:
        resolve_device(name)
    assert repr(name) in str(err.value) and "auto, cpu, cuda, cuda:N, mps" in str(err.value)


@pytest.mark.parametrize(
    ("name", "cuda", "mps", "message"),
    [
        ("cuda", False, False, "CUDA is not available"),
        ("cuda:0", False, False, "CUDA is not available"),
        ("cuda:2", True, False, "cuda:0 .. cuda:1"),
        ("mps", True, False, "MPS is not available"),
    ],
)
def test_devices_this_machine_lacks_are_config_errors(monkeypatch, name, cuda, mps, message):
    hardware(monkeypatch, cuda, mps, count=2)
    with pytest.raises(ConfigError, match=message) as err:
        resolve_device(name)
    assert name in str(err.value)


def test_a_bad_device_stops_train_py_before_anything_is_written(tmp_path, cli_overrides):
    with pytest.raises(ConfigError, match="'tpu'"):
        train.main(cli_overrides(run_name="bad", **{"trainer.device": "tpu"}))
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def backend_flags():
    """Restore the global flags setup_device sets."""
    saved = torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision()
    yield
    torch.backends.cudnn.benchmark = saved[0]
    torch.set_float32_matmul_precision(saved[1])


@pytest.mark.parametrize(("benchmark", "deterministic"), [(True, False), (False, False), (True, True)])
def test_setup_device_sets_cudnn_benchmark_and_matmul_precision(make_config, backend_flags, benchmark, deterministic):
    settings = {"trainer.cudnn_benchmark": benchmark, "trainer.deterministic": deterministic}
    cfg = make_config(**settings, **{"trainer.matmul_precision": "medium"})
    expected = benchmark and not deterministic  # benchmark's kernel choice is not deterministic
    torch.backends.cudnn.benchmark = not expected
    torch.set_float32_matmul_precision("highest")
    assert setup_device(cfg, CUDA) == CUDA  # flags only: nothing runs on the device here
    assert torch.backends.cudnn.benchmark == expected
    assert torch.get_float32_matmul_precision() == "medium"


def test_setup_device_leaves_the_flags_alone_off_cuda(make_config, backend_flags):
    torch.set_float32_matmul_precision("highest")
    assert setup_device(make_config(**{"trainer.matmul_precision": "medium"})) == CPU  # trainer.device=cpu
    assert torch.get_float32_matmul_precision() == "highest"


# ---- mixed precision -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("amp", "dtype", "bf16_supported", "expected"),
    [
        (True, "auto", True, torch.bfloat16),
        (True, "auto", False, torch.float16),
        (True, "float16", True, torch.float16),
        (True, "bfloat16", False, torch.bfloat16),
        (False, "auto", True, None),
    ],
)
def test_amp_dtype_on_cuda(make_config, monkeypatch, amp, dtype, bf16_supported, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_supported)
    cfg = make_config(**{"trainer.amp": amp, "trainer.amp_dtype": dtype})
    assert amp_dtype(cfg, CUDA) == expected
    assert amp_dtype(cfg, CPU) is None  # AMP is for CUDA only


def test_no_amp_no_scaler_no_pinning_and_no_channels_last_on_the_cpu(make_config, tmp_path):
    cfg = make_config()
    trainer = make_trainer(cfg, tmp_path)
    assert not trainer.scaler.is_enabled()
    assert not trainer.train_loader.pin_memory and not trainer.val_loader.pin_memory  # nothing to pin for
    assert all(p.is_contiguous() for p in trainer.model.parameters())  # channels_last is for CUDA only


@pytest.mark.parametrize("pin", [True, False])
def test_lazy_loaders_pin_memory_for_cuda_when_asked(make_config, pin):
    train_loader, val_loader, _ = build_dataloaders(make_config(**{"data.pin_memory": pin}), device=CUDA)
    assert train_loader.pin_memory == val_loader.pin_memory == pin


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_and_grad_scaler_path_trains(make_config, tmp_path, monkeypatch, dtype):
    """The CUDA AMP branch (autocast, GradScaler with unscale_ before clipping), run on the CPU."""
    monkeypatch.setattr(engine, "amp_dtype", lambda cfg, device: dtype)
    trainer = make_trainer(make_config(**{"trainer.grad_clip_norm": 1.0, "trainer.epochs": 2}), tmp_path)
    assert trainer.scaler.is_enabled() == (dtype == torch.float16)  # loss scaling only for fp16
    history = trainer.fit()
    assert all(math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"]) for row in history)


def test_validation_evaluate_and_predict_run_in_fp32_while_training_runs_under_autocast(
    make_config, cli_overrides, data_root, tmp_path, monkeypatch, capsys
):
    """One precision for every number judged: metrics.csv, best.pt, evaluate.py and predict.py agree row for row."""
    monkeypatch.setattr(engine, "amp_dtype", lambda cfg, device: torch.bfloat16)  # training's autocast, on the CPU
    forwards = []  # (training?, under autocast?) per forward pass
    real_build_model = train.build_model

    def recorded(*args):
        model = real_build_model(*args)
        model.register_forward_hook(lambda m, i, o: forwards.append((m.training, torch.is_autocast_enabled("cpu"))))
        return model

    monkeypatch.setattr(train, "build_model", recorded)
    assert train.main(cli_overrides(run_name="bf16")) == 0
    assert (True, True) in forwards  # training ran under autocast
    assert {autocast for training, autocast in forwards if not training} == {False}  # validation, reports: fp32
    run_dir = tmp_path / "runs" / "bf16"
    capsys.readouterr()
    assert evaluate.main([str(run_dir / "checkpoints" / "last.pt")]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == float(read_metrics(run_dir)[-1]["val_loss"])
    with open(run_dir / "eval" / "val" / "predictions.csv", newline="", encoding="utf-8") as file:
        evaluated = sorted(csv.DictReader(file), key=lambda row: int(row["index"]))
    inputs, names = val_inputs(data_root, build_dataloaders(make_config())[1].dataset, tmp_path)
    output = tmp_path / "predicted.csv"
    assert predict.main([str(run_dir / "checkpoints" / "last.pt"), *inputs, "--output", str(output)]) == 0
    with open(output, newline="", encoding="utf-8") as file:
        predicted = {row["input"]: row for row in csv.DictReader(file)}
    assert len(evaluated) == len(names) == len(predicted)
    for name, row in zip(names, evaluated, strict=True):
        assert predicted[name]["prediction"] == row["prediction"]
        probability, confidence = float(predicted[name]["probability"]), float(row["confidence"])  # classification
        assert probability == pytest.approx(confidence, abs=2e-6)  # classification
        for column in [name for name in row if name.startswith("p_")]:  # each label's score  # multilabel
            assert float(predicted[name][column]) == pytest.approx(float(row[column]), abs=2e-6)  # multilabel


def test_grad_scaler_state_is_checkpointed_and_restored(make_config, tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "amp_dtype", lambda cfg, device: torch.float16)
    cfg = make_config()
    trainer = make_trainer(cfg, tmp_path)
    # A scaler that grows after 2 good steps: its scale and growth tracker leave the defaults.
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2)
    trainer.fit()
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["scaler"]
    assert saved == trainer.scaler.state_dict()
    assert (saved["scale"], saved["_growth_tracker"]) != (2.0**10, 0)  # it moved while training

    resumed = make_trainer(cfg, tmp_path / "resumed")
    fresh = resumed.scaler.state_dict()
    resumed.load_state_dict(torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True))
    assert resumed.scaler.state_dict() == saved != fresh
    assert resumed.scaler.get_scale() == saved["scale"]


# ---- channels_last, fused AdamW ------------------------------------------------------------------------
def test_weights_go_channels_last_on_cuda_and_still_train_on_the_cpu(make_config, tmp_path):
    cfg = make_config(**{"trainer.amp": False})
    on_cuda = make_trainer(cfg, tmp_path / "cuda", device=CUDA)  # converts the weights, runs nothing
    kernels = [p for p in on_cuda.model.parameters() if p.ndim == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
    assert all(not p.is_contiguous() for p in kernels if p.shape[1] > 1 and p.shape[-1] > 1)  # NHWC, not NCHW
    trainer = make_trainer(cfg, tmp_path / "cpu", model=on_cuda.model)  # a channels_last model on the CPU
    assert math.isfinite(trainer.fit()[0]["train_loss"])


def test_the_model_goes_channels_last_before_the_optimizer_takes_its_parameters(make_config):
    cfg = make_config(**{"trainer.channels_last": True})
    convolutions = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 3))
    model = prepare_model(convolutions, cfg, CUDA)  # converts, runs nothing
    optimizer = build_optimizer(cfg, model)
    kernels = [p for group in optimizer.param_groups for p in group["params"] if p.ndim == 4]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
    assert {id(p) for p in kernels} == {id(p) for p in model.parameters() if p.ndim == 4}


def test_adamw_is_not_fused_on_the_cpu(make_config):
    assert not build_optimizer(make_config(), torch.nn.Linear(3, 2)).defaults["fused"]


@needs_cuda
def test_adamw_is_fused_on_cuda(make_config):
    assert build_optimizer(make_config(), torch.nn.Linear(3, 2).cuda()).defaults["fused"]


# ---- on a real GPU -------------------------------------------------------------------------------------
@needs_cuda
def test_one_epoch_on_cuda_with_amp(make_config, tmp_path):
    cfg = make_config(**{"trainer.device": "cuda", "trainer.amp": True})
    device = setup_device(cfg)
    loaders = build_dataloaders(cfg, device=device)
    trainer = make_trainer(cfg, tmp_path, build_model(cfg, loaders[2]).to(device), loaders, device)
    row = trainer.fit()[0]
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])
    state = torch.load(tmp_path / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert all(t.device.type == "cpu" for t in state["model"].values())


@needs_cuda
def test_preload_device_holds_the_data_on_the_gpu(make_config):
    train_loader, _, _ = build_dataloaders(make_config(**{"data.preload": "device", "trainer.device": "cuda"}))
    inputs, targets = next(iter(train_loader))
    assert inputs.is_cuda and targets.is_cuda


def test_preload_device_on_a_cpu_run_holds_the_data_in_ram(make_config):
    train_loader, _, _ = build_dataloaders(make_config(**{"data.preload": "device"}))
    assert train_loader.inputs.device == CPU  # trainer.device=cpu in the fast settings


def test_free_memory_is_free_ram_off_cuda():
    free = device_module.free_memory(CPU)
    assert free is None or free > 0


def test_on_a_gpu_preloaded_batches_are_gathered_pinned_and_cross_as_stored(make_config, monkeypatch):
    """data.pin_memory with a CUDA device: batches are gathered into page-locked memory and copied as stored
    (uint8 images), the transform (augmentation) running on the device; plain indexing otherwise."""
    take_pinned = loaders.take_pinned
    cuda = torch.device("cuda")  # only named: nothing here touches a GPU
    for settings, device, pinned in [({}, cuda, True), ({"data.pin_memory": False}, cuda, False), ({}, "cpu", False)]:
        train_loader, val_loader, _ = build_dataloaders(make_config(**CPU_PRELOAD, **settings), device=device)
        for loader in (train_loader, val_loader):
            take = loader.take
            assert (take is not None) == pinned
            assert not pinned or (take.func is take_pinned and take.keywords == {"device": cuda})
    requested, empty = [], torch.empty

    def recorded(*shape, pin_memory=False, **kwargs):  # the request is recorded; there is nothing to pin on a CPU
        requested.append(pin_memory)
        return empty(*shape, **kwargs)

    monkeypatch.setattr(torch, "empty", recorded)
    _, plain, _ = build_dataloaders(make_config(**CPU_PRELOAD), device="cpu")
    seen = []
    pinned = PreloadedLoader(plain.inputs, plain.targets, 4, transform=lambda x, y: seen.append(x.dtype) or (x, y))
    pinned.take = partial(take_pinned, device=torch.device("cpu"))
    requested.clear()
    for (x, y), (x_plain, y_plain) in zip(pinned, PreloadedLoader(plain.inputs, plain.targets, 4), strict=True):
        assert torch.equal(x, x_plain) and torch.equal(y, y_plain)
    assert requested == [True, True] * len(pinned) and seen == [plain.inputs.dtype] * len(pinned)
