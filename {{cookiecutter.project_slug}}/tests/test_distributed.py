"""DistributedDataParallel under torchrun, on the CPU (gloo): whole-set val metrics, rank 0 writes, resume, crashes."""

import csv
import json
import logging
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from conftest import PROJECT_DIR, fast_overrides, write_tiny_sample
from torch.utils.data import DataLoader, DistributedSampler

from {{ cookiecutter.package_name }} import data as data_module
from {{ cookiecutter.package_name }}.data import ShardSampler, build_dataloaders, seed_worker_for_rank
from {{ cookiecutter.package_name }}.data.preload import PreloadedLoader
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.trainer import Trainer, sync_batchnorm
from {{ cookiecutter.package_name }}.utils import distributed

TIMEOUT = 240  # seconds; a hang fails the test instead of the suite


def torchrun(cwd, script, *args, nproc=2):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command += [str(script), *map(str, args)]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def explain(proc) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"


def metrics(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def evaluate_alone(run_script, checkpoint) -> dict:
    proc = run_script("evaluate.py", checkpoint, "trainer.device=cpu")
    assert proc.returncode == 0, explain(proc)
    return json.loads(proc.stdout)


def drop_one_val_sample(root) -> None:
    """Leave an odd number of val samples, so that 2 ranks cannot split them evenly."""
{% if cookiecutter.dataset_type == "image_folder" %}
    next(p for p in sorted((root / "val").rglob("*")) if p.is_file()).unlink()
{% elif cookiecutter.dataset_type == "image_list" %}
    lines = (root / "val.txt").read_text().splitlines()
    (root / "val.txt").write_text("\n".join(lines[:-1]) + "\n")
{% elif cookiecutter.dataset_type == "tabular_csv" %}
    lines = (root / "val.csv").read_text().splitlines()
    (root / "val.csv").write_text("\n".join(lines[:-1]) + "\n")
{% else %}
    raw = root / "MNIST" / "raw"
    for name, header in (("t10k-images-idx3-ubyte", 16), ("t10k-labels-idx1-ubyte", 8)):
        blob = bytearray((raw / name).read_bytes())
        n = int.from_bytes(blob[4:8], "big")
        blob[4:8] = (n - 1).to_bytes(4, "big")  # idx files: the sample count follows the magic number
        (raw / name).write_bytes(bytes(blob[: len(blob) - (len(blob) - header) // n]))
{% endif %}


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """One epoch with 2 processes, then a resume to 2 epochs, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("ddp")
    data_root = write_tiny_sample(tmp / "data")
    drop_one_val_sample(data_root)
    overrides = fast_overrides(tmp, data_root, run_name="ddp", **{"data.num_workers": 1})
    first = torchrun(tmp, PROJECT_DIR / "train.py", *overrides)
    assert first.returncode == 0, explain(first)
    run_dir = tmp / "runs" / "ddp"
    after_one = metrics(run_dir)
{% if cookiecutter.use_tensorboard %}
    events_after_one = sorted((run_dir / "tensorboard").glob("events.out.tfevents.*"))
{% endif %}
    resumed = torchrun(tmp, PROJECT_DIR / "train.py", "--resume", run_dir, "trainer.epochs=2")
    assert resumed.returncode == 0, explain(resumed)
{% if cookiecutter.use_tensorboard %}
    return run_dir, after_one, first, resumed, events_after_one
{% else %}
    return run_dir, after_one, first, resumed
{% endif %}


def test_val_metrics_equal_a_single_process_evaluation(ddp_run, run_script):
    run_dir, after_one, *_ = ddp_run
    rows = metrics(run_dir)
    assert [row["epoch"] for row in after_one] == ["1"] and [row["epoch"] for row in rows] == ["1", "2"]
    result = evaluate_alone(run_script, run_dir / "checkpoints" / "last.pt")
    assert result["epoch"] == 2
    # An odd val set: padded shards (as DistributedSampler's) would count a sample twice and shift the metrics.
    assert result["num_samples"] % 2 == 1
    assert result["loss"] == pytest.approx(float(rows[-1]["val_loss"]), abs=1e-6)
    assert result["accuracy"] == pytest.approx(float(rows[-1]["val_acc"]), abs=1e-9)


def test_rank_zero_alone_writes_and_logs(ddp_run):
    run_dir, _, first, *_ = ddp_run
    optional = {"curves.png", "tensorboard"}  # with matplotlib / the use_tensorboard answer
    written = {p.name for p in run_dir.iterdir()} - optional
    assert written == {"checkpoints", "config.yaml", "metrics.csv", "train.log"}  # nothing per rank
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    log = (run_dir / "train.log").read_text()
    assert log.count("epoch 1/1") == 1  # one rank logged the epoch, once
    assert first.stderr.count("Run dir") == 1
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert not any(key.startswith(("module.", "_orig_mod.")) for key in state["model"])  # the unwrapped model


def test_a_crash_on_one_rank_ends_the_job(tmp_path, cli_overrides):
    script = tmp_path / "crash_rank1.py"
    script.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(PROJECT_DIR)!r})\n"
        "import train\n"
        "from {{ cookiecutter.package_name }} import trainer\n"
        "if os.environ['RANK'] == '1':\n"
        "    def crash(self, epoch):\n"
        "        raise RuntimeError('simulated crash on rank 1')\n"
        "    trainer.Trainer.train_one_epoch = crash\n"
        "sys.exit(train.main(sys.argv[1:]))\n"
    )
    proc = torchrun(tmp_path, script, *cli_overrides(run_name="crash"))  # a hang would hit TIMEOUT
    assert proc.returncode != 0, explain(proc)
    assert "simulated crash on rank 1" in proc.stderr, explain(proc)


@pytest.mark.parametrize("n", [7, 8, 1])
def test_val_shards_cover_every_sample_once(n):
    world = 3
    sampled = sorted(i for rank in range(world) for i in ShardSampler(n, rank, world))
    assert sampled == list(range(n))
    x, y = torch.arange(n).float().unsqueeze(1), torch.arange(n)
    preloaded = [t for rank in range(world) for _, b in PreloadedLoader(x, y, 2, shard=(rank, world)) for t in b]
    assert sorted(int(t) for t in preloaded) == list(range(n))


def test_train_shards_are_equal_and_disjoint_up_to_padding():
    n, world = 7, 2
    x, y = torch.zeros(n, 1), torch.arange(n)
    shards = []
    for rank in range(world):
        loader = PreloadedLoader(x, y, 2, shuffle=True, generator=torch.Generator().manual_seed(0), shard=(rank, world))
        shards.append(torch.cat([b for _, b in loader]).tolist())
    assert len(shards[0]) == len(shards[1]) == 4  # every rank takes the same number of steps
    assert set(shards[0]) | set(shards[1]) == set(range(n))


def test_ranks_draw_different_augmentation_seeds():
    seeds = []
    for rank in (0, 1):
        torch.manual_seed(1234)  # what the loader gives worker 0 on every rank
        seed_worker_for_rank(0, rank)
        seeds.append(torch.initial_seed())
    assert seeds[0] != seeds[1]
{% if cookiecutter.use_tensorboard %}


def test_rank_zero_alone_writes_tensorboard_events(ddp_run):
    pytest.importorskip("tensorboard")
    *_, events_after_one = ddp_run
    assert len(events_after_one) == 1  # one writer for the 2-rank run, not one per rank
{% endif %}


def test_train_shards_are_never_empty_with_fewer_samples_than_ranks():
    for n, world in ((1, 3), (2, 5)):
        x, y = torch.zeros(n, 1), torch.arange(n)
        for rank in range(world):
            loader = PreloadedLoader(x, y, 4, shuffle=True, generator=torch.Generator(), shard=(rank, world))
            assert len(loader) == 1 and len(torch.cat([b for _, b in loader])) == 1  # padded as DistributedSampler


def test_each_rank_uses_its_local_gpu_whatever_the_device_index(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert distributed.rank_device("cuda:0") == torch.device("cuda", 1)
    assert distributed.rank_device("auto") == torch.device("cuda", 1)
    assert distributed.rank_device("cpu") == torch.device("cpu")


def test_preload_device_goes_to_the_ranks_own_device(make_config, monkeypatch):
    asked = []
    monkeypatch.setattr(data_module, "rank_device", lambda name: asked.append(name) or torch.device("cpu"))
    cfg = make_config(**{"data.preload": "device"})
    build_dataloaders(cfg)
    assert asked == ["cpu"]  # resolved as setup_distributed does (cuda:LOCAL_RANK under torchrun)
    build_dataloaders(cfg, device=torch.device("cpu"))  # train.py passes the rank's device itself
    assert asked == ["cpu"]


@pytest.fixture
def one_rank_group(tmp_path):
    """An in-process gloo group of a single rank: the Trainer wraps the model in DDP."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def make_trainer(cfg, run_dir, wrap_loader=None):
    torch.manual_seed(0)  # the same initial weights in every call
    train_loader, val_loader, info = build_dataloaders(cfg)
    if wrap_loader is not None:
        train_loader = wrap_loader(train_loader)
    return Trainer(cfg, build_model(cfg, info), train_loader, val_loader, info, run_dir, "cpu")


def record_calls(monkeypatch, trainer):
    """Record the batches DDP's forward ran on, and those whose backward was under no_sync."""
    forwards, no_sync_batches = [], []
    forward, no_sync = trainer.ddp.forward, trainer.ddp.no_sync

    def recording_forward(*args, **kwargs):
        forwards.append(len(forwards) + 1)
        return forward(*args, **kwargs)

    def recording_no_sync():
        no_sync_batches.append(len(forwards) + 1)  # entered before that batch's forward
        return no_sync()

    monkeypatch.setattr(trainer.ddp, "forward", recording_forward)
    monkeypatch.setattr(trainer.ddp, "no_sync", recording_no_sync)
    return forwards, no_sync_batches


def test_ddp_skips_the_gradient_sync_within_accumulation_groups(make_config, tmp_path, one_rank_group, monkeypatch):
    cfg = make_config(**{"trainer.accumulate_steps": 2, "model.dropout": 0.0})
    trainer = make_trainer(cfg, tmp_path / "ddp")
    assert trainer.ddp is not None
    forwards, no_sync_batches = record_calls(monkeypatch, trainer)
    torch.manual_seed(1)
    trainer.fit()
    n = len(trainer.train_loader)
    assert n >= 3 and forwards == list(range(1, n + 1))
    assert no_sync_batches == [i for i in range(1, n + 1) if i % 2 == 1 and i < n]  # all but each group's last
    dist.destroy_process_group()  # the same run without DDP gives the same weights
    alone = make_trainer(cfg, tmp_path / "alone")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store2'}", rank=0, world_size=1)
    assert alone.ddp is None
    torch.manual_seed(1)
    alone.fit()
    assert trainer.step == alone.step == math.ceil(n / 2)
    expected = alone.eval_model.state_dict()
    for name, value in trainer.eval_model.state_dict().items():
        torch.testing.assert_close(value, expected[name], msg=name)
{% if cookiecutter.dataset_type != "tabular_csv" %}


class EmptySecondBatch:
    """The loader's batches, the second one empty: as collate_skipping_none gives when all its images are corrupt."""

    def __init__(self, loader):
        self.loader, self.dataset, self.generator = loader, loader.dataset, loader.generator

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for i, (inputs, targets) in enumerate(self.loader):
            yield (torch.empty(0), targets[:0]) if i == 1 else (inputs, targets)


def test_an_all_corrupt_batch_still_joins_the_ddp_step(make_config, tmp_path, one_rank_group, monkeypatch):
    # Skipping it on one rank would leave the others waiting in backward's all-reduce: it runs as an empty batch.
    cfg = make_config(**{"trainer.accumulate_steps": 2})
    trainer = make_trainer(cfg, tmp_path / "ddp", EmptySecondBatch)
    forwards, _ = record_calls(monkeypatch, trainer)
    history = trainer.fit()
    n = len(trainer.train_loader)
    assert forwards == list(range(1, n + 1))  # every batch, the empty one too, went through DDP
    assert trainer.step == math.ceil(n / 2) and math.isfinite(history[0]["train_loss"])


def test_without_ddp_an_all_corrupt_batch_still_ends_its_group_with_a_step(make_config, tmp_path):
    cfg = make_config(**{"trainer.accumulate_steps": 2})
    trainer = make_trainer(cfg, tmp_path / "alone", EmptySecondBatch)
    assert trainer.ddp is None
    trainer.fit()
    assert trainer.step == math.ceil(len(trainer.train_loader) / 2)  # batch 2 ended the first group
{% endif %}


def test_set_epoch_is_called_every_epoch(make_config, tmp_path):
    calls = []

    class RecordingSampler(DistributedSampler):
        def set_epoch(self, epoch):
            calls.append(epoch)
            super().set_epoch(epoch)

    def sharded(loader):
        sampler = RecordingSampler(loader.dataset, num_replicas=2, rank=0, shuffle=True, seed=0)
        kwargs = dict(batch_size=loader.batch_size, collate_fn=loader.collate_fn, generator=loader.generator)
        return DataLoader(loader.dataset, sampler=sampler, **kwargs)

    make_trainer(make_config(**{"trainer.epochs": 2}), tmp_path, sharded).fit()
    assert calls == [0, 1]


def test_sync_batchnorm_converts_on_cuda_and_warns_on_the_cpu(make_config, caplog):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    on = make_config(**{"trainer.sync_batchnorm": True})
    converted = sync_batchnorm(on, model, torch.device("cuda", 0))  # conversion itself needs no GPU
    assert isinstance(converted[1], nn.SyncBatchNorm)
    assert sync_batchnorm(make_config(), model, torch.device("cuda", 0)) is model  # off by default
    with caplog.at_level(logging.WARNING):
        assert sync_batchnorm(on, model, torch.device("cpu")) is model
    assert "trainer.sync_batchnorm needs CUDA" in caplog.text


def test_sync_batchnorm_is_ignored_by_a_cpu_ddp_trainer(make_config, tmp_path, one_rank_group, caplog):
    with caplog.at_level(logging.WARNING):
        trainer = make_trainer(make_config(**{"trainer.sync_batchnorm": True}), tmp_path)
    assert trainer.ddp is not None and "trainer.sync_batchnorm needs CUDA" in caplog.text
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in trainer.ddp.modules())
