"""DDP under torchrun, on the CPU (gloo): whole-set val metrics, rank 0 writes, exact resume, crashes; sharding."""

import csv
import json
import logging
import math
import os
import random
import re
import socket
import subprocess
import sys
from contextlib import contextmanager, nullcontext, suppress
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from conftest import PACKAGE, PROJECT_DIR, fast_overrides
from tiny_data import write_tiny_sample
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import evaluate
from {{ cookiecutter.package_name }} import distributed
from {{ cookiecutter.package_name }}.config import default_choices
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.data.preload import PreloadedLoader
from {{ cookiecutter.package_name }}.data.resumable import ResumableSampler, resume_at
from {{ cookiecutter.package_name }}.distributed import ShardedPreloadedLoader, shard_loaders, wrap_model
from {{ cookiecutter.package_name }}.engine import Trainer, build_optimizer, build_scheduler
from {{ cookiecutter.package_name }}.engine import evaluate as validate  # multilabel
from {{ cookiecutter.package_name }}.errors import DataError
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.report import evaluate_split
from {{ cookiecutter.package_name }}.task import EPOCH_FIELDS, build_criterion

TIMEOUT = 240  # seconds; a hang fails the test instead of the suite
CPU = torch.device("cpu")

# train.py run by torchrun through a script that first applies `patch` (rank: this process's rank).
LAUNCH = """\
import os, sys
sys.path.insert(0, {project!r})
import train
from {package} import distributed, engine
rank = int(os.environ["RANK"])
def crash(*args, **kwargs):
    raise RuntimeError("simulated crash on rank " + str(rank))
def take_skipped(loader):  # as if rank r skipped r + 1 train and 10 * (r + 1) val images (data.skip_corrupt)
    return (rank + 1) * (10 if isinstance(loader.sampler, distributed.ShardSampler) else 1)
{patch}
if __name__ == "__main__":  # DataLoader workers (forkserver) import this module again
    sys.exit(train.main(sys.argv[1:]))
"""
FAKE_SKIPS = "engine.take_skipped = take_skipped"
CRASH_ON_RANK_1 = "engine.train_one_epoch = crash if rank == 1 else engine.train_one_epoch"


def launch_script(cwd, patch: str):
    """LAUNCH with `patch`, written to cwd/launch.py (the script torchrun starts on every rank)."""
    script = cwd / "launch.py"
    script.write_text(LAUNCH.format(project=str(PROJECT_DIR), package=PACKAGE, patch=patch))
    return script


def torchrun(cwd, *args, patch=""):
    script = launch_script(cwd, patch)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command += map(str, args)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


# Rank 1 is preempted in its training forward pass number {forwards} + 1: by `signal` to its launcher (torchrun
# passes it on) or, SIGKILL, to the process itself (no handler, no cleanup: the OOM killer, a lost node).
PREEMPT_RANK_1 = """
import signal, time
real_build_model = train.build_model
def build_model(*args):
    model, done = real_build_model(*args), [0]
    def hook(module, inputs):
        if module.training and rank == 1:
            if done[0] == {forwards}:
                os.kill(os.getpid() if signal.{signal} == signal.SIGKILL else os.getppid(), signal.{signal})
                time.sleep(1)  # torchrun passes it on to this process meanwhile
            done[0] += 1
    model.register_forward_pre_hook(hook)
    return model
train.build_model = build_model
"""


def rendezvous_port() -> int:
    """A free port below Linux's ephemeral range (32768-60999), where no connection or bind(0) of another process can
    take it between this check and the launcher binding it."""
    rng = random.Random()  # not the global one: tests seed that
    for port in rng.sample(range(20000, 32000), 50):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


def two_nodes(cwd, *args, patch=""):
    """README's multi-node command with --nnodes=2 on this machine: two torchrun launchers of one process each,
    meeting at a c10d rendezvous on localhost, on gloo. Its returncode is both exit codes, stderr both outputs."""
    script, port = launch_script(cwd, patch), rendezvous_port()
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1"]
    command += ["--rdzv-backend=c10d", f"--rdzv-id=nodes-{port}", f"--rdzv-endpoint=localhost:{port}", str(script)]
    command += map(str, args)
    # LOGLEVEL=INFO: the launchers log their rendezvous and exit barrier, for the tail shown on a timeout
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOGLEVEL": "INFO"}
    logs = [cwd / f"node-{n}.log" for n in range(2)]
    nodes = []
    for log in logs:
        with open(log, "w") as out:
            nodes.append(subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=out))
    try:
        codes = [node.wait(timeout=TIMEOUT) for node in nodes]
    except subprocess.TimeoutExpired:
        for node in nodes:  # torchrun passes SIGTERM on to its worker, and kills it 30 s later
            node.terminate()
        for node in nodes:
            with suppress(subprocess.TimeoutExpired):
                node.wait(timeout=60)
            node.kill()
        tails = "".join(f"\n--- {log.name} ---\n{log.read_text()[-3000:]}" for log in logs)
        raise AssertionError(f"two launchers on port {port} still running after {TIMEOUT} s{tails}") from None
    return subprocess.CompletedProcess(command, codes, "", "".join(log.read_text() for log in logs))


def explain(proc) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"


def metrics(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


# With an EMA of the weights (kept per rank: it must resume exactly too), and batches of 2: several steps per rank
# and epoch, room for a stop in the middle of one.
# And balanced draws (data.balanced_sampler), also kept per rank and resumed exactly.  # classification
DDP_SETTINGS = {"trainer.ema_decay": 0.9, "data.balanced_sampler": True, "data.batch_size": 2}  # classification
DDP_SETTINGS = {"trainer.ema_decay": 0.9, "data.batch_size": 2}  # regression
DDP_SETTINGS = {"trainer.ema_decay": 0.9, "data.batch_size": 2}  # multilabel
# metrics.csv's val columns (besides val_loss) -> the report's keys: the same numbers, from the running sums.
VAL_SCORES = {"val_acc": "accuracy", "val_macro_f1": "macro_f1"}  # classification
VAL_SCORES = {"val_mae": "mae", "val_rmse": "rmse", "val_r2": "r2"}  # regression
# val_map comes from score bins (the report's map from every score): against one process's validation.  # multilabel
VAL_SCORES = {"val_micro_f1": "micro_f1", "val_macro_f1": "macro_f1", "val_map": "binned_map"}  # multilabel


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """2 ranks with DDP_SETTINGS. "resumed": on two torchrun launchers (--nnodes=2, the README's
    multi-node command on this machine), 2 epochs through a kill -9 of rank 1 and then a SIGTERM to the node of
    rank 1, both in the middle of epoch 2, each followed by `--resume`. "straight": 2 epochs in one launcher
    (with fake skip counts)."""
    tmp = tmp_path_factory.mktemp("ddp")
    # No worker processes (each one started under torchrun costs seconds): those are tested in-process below.
    overrides = fast_overrides(tmp, write_tiny_sample(tmp / "data"), **DDP_SETTINGS, **{"trainer.epochs": 2})
    straight = torchrun(tmp, *overrides, "run_name=straight", patch=FAKE_SKIPS)
    assert straight.returncode == 0, explain(straight)
    run_dir = tmp / "runs" / "resumed"
    # trainer.checkpoint_every_steps=2: last.pt every 2 steps, and the ranks agree on a stop every 2 steps.
    # Rank 1 is killed in epoch 2's 4th batch, then its node is preempted in the 3rd batch after the resume.
    samples, val_samples = map(int, re.search(r"(\d+) train / (\d+) val samples", straight.stderr).groups())
    batches = math.ceil(math.ceil(samples / 2) / DDP_SETTINGS["data.batch_size"])  # per rank and epoch
    patch = PREEMPT_RANK_1.format(forwards=batches + 3, signal="SIGKILL")
    killed = two_nodes(tmp, *overrides, "run_name=resumed", "trainer.checkpoint_every_steps=2", patch=patch)
    after_one = metrics(run_dir)
    killed.state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    stopped = two_nodes(tmp, "--resume", run_dir, patch=PREEMPT_RANK_1.format(forwards=0, signal="SIGTERM"))
    stopped.state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    resumed = two_nodes(tmp, "--resume", run_dir)
    assert resumed.returncode == [0, 0], explain(resumed)
    return {
        "dir": tmp / "runs",
        "val_samples": val_samples,
        "after_one": after_one,
        "resumed": resumed,
        "straight": straight,
        "killed": killed,
        "stopped": stopped,
    }


def test_val_metrics_equal_a_single_process_evaluation(runs, capsys):
    rows = metrics(runs["dir"] / "resumed")
    assert [row["epoch"] for row in runs["after_one"]] == ["1"] and [row["epoch"] for row in rows] == ["1", "2"]
    last = runs["dir"] / "resumed" / "checkpoints" / "last.pt"  # epoch 2 (a run dir would mean its best.pt)
    assert evaluate.main([str(last), "trainer.device=cpu", "data.num_workers=0"]) == 0
    result = json.loads(capsys.readouterr().out)
    from conftest import checkpoint_model  # multilabel

    model, val_loader, cfg = checkpoint_model(last)  # multilabel
    data_info = torch.load(last, weights_only=True)["data_info"]  # multilabel
    validated = validate(model, build_criterion(cfg, data_info), val_loader, torch.device("cpu"), cfg, data_info)  # multilabel
    result["binned_map"] = validated["map"]  # multilabel
    # Each rank validated its shard; the sums over ranks are the whole set's (padded shards would count twice).
    assert result["epoch"] == 2 and result["loss"] == pytest.approx(float(rows[-1]["val_loss"]), abs=1e-6)
    assert set(VAL_SCORES) | {"val_loss"} == {name for name in EPOCH_FIELDS if name.startswith("val_")}  # all of them
    for column, key in VAL_SCORES.items():
        assert result[key] == pytest.approx(float(rows[-1][column]), rel=1e-6, abs=1e-9), column


def read_predictions(run_dir) -> list[dict]:
    with open(run_dir / "eval" / "val" / "predictions.csv", newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def assert_same_numbers(saved, result, key="report"):
    """The same report: every number within 1e-6, everything else equal."""
    if isinstance(saved, dict):
        assert saved.keys() <= result.keys(), key
        for name, value in saved.items():
            assert_same_numbers(value, result[name], f"{key}.{name}")
    elif isinstance(saved, list):
        assert len(saved) == len(result), key
        for i, (value, other) in enumerate(zip(saved, result, strict=True)):
            assert_same_numbers(value, other, f"{key}[{i}]")
    elif isinstance(saved, float):
        assert saved == pytest.approx(result, rel=1e-6, abs=1e-6), key
    else:
        assert saved == result, key


def test_the_report_of_two_ranks_equals_a_single_process_one(runs, capsys):
    # Read before evaluate.py (one process) rewrites them: each rank predicted its own unpadded share of val.
    run_dir = runs["dir"] / "straight"
    saved = json.loads((run_dir / "eval" / "val" / "report.json").read_text(encoding="utf-8"))
    saved_rows = read_predictions(run_dir)
    best = run_dir / "checkpoints" / "best.pt"
    assert evaluate.main([str(best), "trainer.device=cpu", "data.num_workers=0"]) == 0
    result, rows = json.loads(capsys.readouterr().out), read_predictions(run_dir)
    n = runs["val_samples"]
    assert saved["num_samples"] == result["num_samples"] == len(saved_rows) == len(rows) == n
    assert sum(map(sum, saved["confusion_matrix"])) == n  # classification
    assert_same_numbers(saved, result)
    # The shares merged in sample order: each row still its own sample's target and prediction.
    assert [row["index"] for row in saved_rows] == [str(i) for i in range(n)]
    for saved_row, row in zip(saved_rows, rows, strict=True):
        assert saved_row.keys() == row.keys() and saved_row["target"] == row["target"], row["index"]
        for column, value in saved_row.items():
            try:
                assert float(value) == pytest.approx(float(row[column]), rel=1e-5), (row["index"], column)
            except ValueError:  # a name: the same
                assert value == row[column], (row["index"], column)


def test_rank_zero_alone_writes_and_logs(runs):
    for name in ("resumed", "straight"):
        run_dir = runs["dir"] / name
        expected = {"checkpoints", "config.yaml", "metrics.csv", "train.log", "curves.png", "eval"}  # nothing per rank
        expected.add("tensorboard")  # tensorboard
        assert {p.name for p in run_dir.iterdir()} == expected
        assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
        state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
        assert not any(key.startswith(("module.", "_orig_mod.")) for key in state["model"])  # the unwrapped model
    assert len(list((runs["dir"] / "straight" / "tensorboard").glob("events.out.tfevents.*"))) == 1  # tensorboard
    log = (runs["dir"] / "resumed" / "train.log").read_text()
    assert log.count("epoch 1/2") == log.count("epoch 2/2") == 1  # one rank logged each epoch, once
    assert runs["killed"].stderr.count("Run dir") == 1 and runs["resumed"].stderr.count("Resumed") == 1
    stderr = runs["straight"].stderr  # images
    for epoch in (1, 2):  # skip counts (data.skip_corrupt) summed over ranks and logged once  # images
        assert stderr.count(f"epoch {epoch}: skipped 3 unreadable train images") == 1, explain(runs["straight"])  # images
        assert stderr.count(f"epoch {epoch}: skipped 30 unreadable val images") == 1  # images
    assert stderr.count("unreadable") == 4  # rank 1 logs none of them  # images


def test_resume_under_torchrun_gives_the_weights_of_an_uninterrupted_run(runs):
    # Every epoch reseeds from (seed, epoch, rank): shuffling, shards, worker seeds and dropout replay exactly.
    resumed, straight = (torch.load(runs["dir"] / n / "checkpoints" / "last.pt") for n in ("resumed", "straight"))
    assert resumed["epoch"] == straight["epoch"] == 2 and resumed["step"] == straight["step"]
    for entry in ("model", "model_ema"):  # the trained weights and their average (trainer.ema_decay)
        assert resumed[entry].keys() == straight[entry].keys()
        for name, value in straight[entry].items():
            assert torch.equal(resumed[entry][name], value), (entry, name)
    assert [{**row, "time_s": 0} for row in resumed["history"]] == [{**r, "time_s": 0} for r in straight["history"]]


def test_a_killed_rank_and_a_preempted_node_stop_every_rank_with_a_checkpoint(runs):
    killed, stopped = runs["killed"], runs["stopped"]
    assert all(killed.returncode) and all(stopped.returncode), explain(stopped)
    # kill -9: no handler, no cleanup; last.pt is the one written every 2 steps, after batch 2 of epoch 2.
    assert killed.state["epoch"] == 1 and killed.state["progress"]["batches"] == 2, explain(killed)
    # SIGTERM reached rank 1 alone (through its launcher), in batch 3; both ranks stopped after step 4.
    assert stopped.state["epoch"] == 1 and stopped.state["progress"]["batches"] == 4, explain(stopped)
    assert stopped.stderr.count("stopped on request in epoch 2 after 4 batches") == 2, explain(stopped)


def test_a_crash_on_one_rank_ends_the_job(tmp_path, cli_overrides):
    proc = torchrun(tmp_path, *cli_overrides(run_name="crash"), patch=CRASH_ON_RANK_1)  # a hang would hit TIMEOUT
    assert proc.returncode != 0, explain(proc)
    assert "simulated crash on rank 1" in proc.stderr, explain(proc)


@contextmanager
def one_rank_group(store):
    """An in-process gloo group of a single rank: wrap_model wraps the model in DDP."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def fake_rank(monkeypatch, rank: int, world_size: int) -> None:
    """shard_loaders as it runs on `rank` of `world_size` (no process group needed)."""
    monkeypatch.setattr(distributed, "get_rank", lambda: rank)
    monkeypatch.setattr(distributed, "get_world_size", lambda: world_size)


def make_trainer(cfg, run_dir, wrap_loader=lambda loader: loader):
    """What train.py builds: sharded loaders, a wrapped model (DDP inside a process group), the task's loss."""
    train_loader, val_loader, info = build_dataloaders(cfg)
    train_loader, val_loader = shard_loaders(train_loader, val_loader, cfg)
    train_loader = wrap_loader(train_loader)
    torch.manual_seed(0)  # the same initial weights in every call
    model = wrap_model(build_model(cfg, info), cfg, CPU)
    optimizer, criterion = build_optimizer(cfg, model), build_criterion(cfg, info)
    scheduler = build_scheduler(cfg, optimizer)
    return Trainer(cfg, model, criterion, optimizer, scheduler, train_loader, val_loader, info, run_dir, CPU)


def record_forwards(model) -> list[int]:
    """1, 2, ...: one number per training batch the model's forward ran on (validation's are not counted)."""
    forwards = []
    model.register_forward_pre_hook(lambda module, _: forwards.append(len(forwards) + 1) if module.training else None)
    return forwards


def test_ddp_skips_the_gradient_sync_within_accumulation_groups(make_config, tmp_path, monkeypatch):
    cfg = make_config(**{"trainer.accumulate_steps": 2})
    alone = make_trainer(cfg, tmp_path / "alone")
    alone.fit()
    with one_rank_group(tmp_path / "store"):
        trainer = make_trainer(cfg, tmp_path / "ddp")
        assert isinstance(trainer.model, DistributedDataParallel)
        forwards, no_sync_batches, no_sync = record_forwards(trainer.model), [], trainer.model.no_sync
        # Record the batches whose backward ran under no_sync (entered before that batch's forward).
        monkeypatch.setattr(trainer.model, "no_sync", lambda: no_sync_batches.append(len(forwards) + 1) or no_sync())
        trainer.fit()
    n = len(trainer.train_loader)
    assert n >= 3 and forwards == list(range(1, n + 1))
    assert no_sync_batches == [i for i in range(1, n + 1) if i % 2 == 1 and i < n]  # all but each group's last
    assert trainer.step == alone.step == math.ceil(n / 2)
    expected = alone.eval_model.state_dict()  # the same run without DDP gives the same weights
    for name, value in trainer.eval_model.state_dict().items():
        torch.testing.assert_close(value, expected[name], msg=name)


class EmptySecondBatch:
    """The loader's batches, the second one empty (all corrupt, data.skip_corrupt): it must still join the step."""

    def __init__(self, loader):
        self.loader, self.dataset, self.generator = loader, loader.dataset, loader.generator

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for i, (inputs, targets) in enumerate(self.loader):
            yield (inputs[:0], targets[:0]) if i == 1 else (inputs, targets)


@pytest.mark.parametrize("ddp", [True, False])
def test_an_empty_batch_still_joins_the_step(make_config, tmp_path, ddp):
    cfg = make_config(**{"trainer.accumulate_steps": 2})
    with one_rank_group(tmp_path / "store") if ddp else nullcontext():
        trainer = make_trainer(cfg, tmp_path / "run", EmptySecondBatch)
        forwards = record_forwards(trainer.model)
        history = trainer.fit()
    n = len(trainer.train_loader)
    assert forwards == list(range(1, n + 1))  # every batch, the empty one too, went through the model
    assert trainer.step == math.ceil(n / 2) and math.isfinite(history[0]["train_loss"])  # batch 2 ended group 1


def test_set_epoch_reshuffles_the_shard_every_epoch(make_config, tmp_path, monkeypatch):
    epochs, orders = [], []

    class RecordingSampler(DistributedSampler):
        def set_epoch(self, epoch):
            epochs.append(epoch)
            super().set_epoch(epoch)

        def __iter__(self):
            orders.append(list(super().__iter__()))
            return iter(orders[-1])

    monkeypatch.setattr(distributed, "DistributedSampler", RecordingSampler)
    fake_rank(monkeypatch, 0, 2)
    make_trainer(make_config(**{"trainer.epochs": 2}), tmp_path).fit()
    assert epochs == [0, 1] and len(orders) == 2
    assert orders[0] != orders[1] and sorted(orders[0]) != sorted(orders[1])  # another order and another half


def shard_indices(loader) -> list[int]:
    if isinstance(loader, PreloadedLoader):
        loader.generator.manual_seed(0)  # as the trainer reseeds it on every rank: one shared order
        return loader.order().tolist()
    return list(loader.sampler)


@pytest.mark.parametrize("preload", [p for p in default_choices()["data.preload"] if p != "device"])  # disk: images
def test_val_shards_cover_every_sample_once_and_train_shards_are_equal(make_config, monkeypatch, preload, tmp_path):
    cache = {"data.cache_dir": str(tmp_path / "cache")} if preload == "disk" else {}
    cfg = make_config(**{"data.preload": preload, **cache})
    train_loader, val_loader, _ = build_dataloaders(cfg)
    world = 7  # divides none of the tiny val sets: shards of unequal size
    val, train = [], []
    for rank in range(world):
        fake_rank(monkeypatch, rank, world)
        train_shard, val_shard = shard_loaders(train_loader, val_loader, cfg)
        assert isinstance(val_shard, ShardedPreloadedLoader) == (preload != "false")  # disk: shards of the mapping
        val += shard_indices(val_shard)
        train.append(shard_indices(train_shard))
    assert sorted(val) == list(range(len(val_loader.dataset)))  # no padding: no sample counted twice
    n = len(train_loader.dataset)  # every rank takes the same number of steps:
    assert {len(shard) for shard in train} == {math.ceil(n / world)}
    assert {i for shard in train for i in shard} == set(range(n))


@pytest.mark.parametrize("preloaded", [False, True])
@pytest.mark.parametrize(("n", "world"), [(1, 3), (2, 5)])
def test_train_shards_are_never_empty_with_fewer_samples_than_ranks(make_config, monkeypatch, preloaded, n, world):
    cfg = make_config(**{"data.batch_size": 4})
    x, y, generator = torch.zeros(n, 1), torch.arange(n), torch.Generator()
    lazy = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, generator=generator)
    loader = PreloadedLoader(x, y, 4, shuffle=True, generator=generator) if preloaded else lazy
    for rank in range(world):
        fake_rank(monkeypatch, rank, world)
        train_shard, _ = shard_loaders(loader, loader, cfg)
        assert [len(targets) for _, targets in train_shard] == [1]  # padded, as DistributedSampler pads


def test_shards_read_by_forkserver_workers_are_those_of_the_main_process(make_config, monkeypatch):
    # The process group runs threads, so under torchrun workers start from a forkserver (no fork of a
    # threaded process): the dataset travels by pickle and every sample lands where it would in-process.
    fake_rank(monkeypatch, 1, 2)
    shards = []
    for workers in (0, 1):
        cfg = make_config(**{"data.num_workers": workers, "data.preload": "false"})
        train_shard, val_shard = shard_loaders(*build_dataloaders(cfg)[:2], cfg)
        context = train_shard.multiprocessing_context
        assert (context.get_start_method() if context else None) == ("forkserver" if workers else None)
        train_shard.generator.manual_seed(0)
        shards.append((list(train_shard), list(val_shard)))
    (train, val), (train_in_workers, val_in_workers) = shards
    assert [y.tolist() for _, y in train] == [y.tolist() for _, y in train_in_workers]  # same shard, same order
    for (x, y), (x_w, y_w) in zip(val, val_in_workers, strict=True):  # no augmentation: identical
        assert torch.equal(x, x_w) and torch.equal(y, y_w)


def test_ranks_draw_different_augmentation_seeds():
    seeds = []
    for rank in (0, 1):
        torch.manual_seed(1234)  # what the loader gives worker 0 on every rank
        seeds.append(distributed.seed_worker_for_rank(0, rank) or torch.initial_seed())
    assert seeds[0] != seeds[1]


def test_each_rank_uses_its_local_gpu_whatever_the_device_index(monkeypatch):
    backends, devices = [], []
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", devices.append)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kwargs: backends.append(backend))
    assert distributed.setup_distributed("cuda:0") == distributed.setup_distributed("auto") == torch.device("cuda", 1)
    assert distributed.setup_distributed("cpu") == CPU  # train.py holds data.preload=device data there too
    assert backends == ["nccl", "nccl", "gloo"] and devices == [torch.device("cuda", 1)] * 2


def test_sync_batchnorm_converts_on_cuda_and_warns_on_the_cpu(make_config, tmp_path, monkeypatch, caplog):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    on = make_config(**{"trainer.sync_batchnorm": True})
    assert wrap_model(model, on, CPU) is model  # plain `python train.py`: no group, no wrapper
    with one_rank_group(tmp_path / "store"):
        with caplog.at_level(logging.WARNING):
            wrapped = wrap_model(model, on, CPU)
        assert isinstance(wrapped, DistributedDataParallel) and "trainer.sync_batchnorm needs CUDA" in caplog.text
        assert not any(isinstance(m, nn.SyncBatchNorm) for m in wrapped.modules())
        monkeypatch.setattr(distributed, "DistributedDataParallel", lambda model, device_ids: model)  # needs a GPU
        assert isinstance(wrap_model(model, on, torch.device("cuda", 0))[1], nn.SyncBatchNorm)  # needs no GPU
        assert wrap_model(model, make_config(), torch.device("cuda", 0)) is model  # off by default


def share(indices: list[int], loss_sum: float) -> dict:
    """predict_split's outputs for the samples `indices` (targets and outputs that name their sample)."""
    index = torch.tensor(indices, dtype=torch.int64)
    outputs = torch.stack([index.double(), -index.double()], dim=1)
    target = 10 * index + 1
    return {"index": index, "target": target, "output": outputs, "loss_sum": loss_sum, "weight_sum": len(indices)}


def test_shares_merge_in_sample_order_and_an_empty_one_adds_nothing(make_config):
    empty = {"index": torch.empty(0, dtype=torch.int64), "loss_sum": 0.0, "weight_sum": 0.0}
    merged = distributed.merge_shares([share([4, 1], 2.5), empty, share([0, 3, 2], 1.0)])
    assert merged["index"].tolist() == [0, 1, 2, 3, 4]
    assert merged["target"].tolist() == [1, 11, 21, 31, 41]  # each row still its own sample's
    assert merged["output"].tolist() == [[0, 0], [1, -1], [2, -2], [3, -3], [4, -4]]
    assert (merged["loss_sum"], merged["weight_sum"]) == (3.5, 5)
    nothing = distributed.merge_shares([empty, empty])  # fewer samples than ranks, all skipped
    assert len(nothing["index"]) == 0
    dataset = TensorDataset(torch.zeros(0, 1), torch.zeros(0, 1))
    with pytest.raises(DataError, match="no samples to evaluate"):
        evaluate_split(None, None, dataset, {}, make_config(), CPU, None, lambda *args: nothing)


def test_rank_zero_draws_what_one_process_draws_and_other_ranks_their_own():
    order = list(range(10))
    one = ResumableSampler(order, torch.Generator(), 2)
    ranks = [distributed.ShardResumableSampler(order, torch.Generator(), 2, rank) for rank in (0, 1)]
    seeds = []
    for sampler in (one, *ranks):
        sampler.generator.manual_seed(5)
        seeds.append([index.seed for index in sampler])
    assert seeds[0] == seeds[1] and not set(seeds[0]) & set(seeds[2])
    ranks[1].generator.manual_seed(5)
    resume_at(SimpleNamespace(sampler=ranks[1]), 2)  # resumed at batch 2: the rest with the same seeds
    assert [(int(index), index.seed) for index in ranks[1]] == list(zip(order[4:], seeds[2][4:], strict=True))


def test_ranks_agree_every_few_steps_and_on_each_due_checkpoint(monkeypatch):
    assert [distributed.agreement_due(s, 0) for s in (1, 7, 10)] == [True, True, True]  # one process: every step
    monkeypatch.setattr(distributed, "get_world_size", lambda: 2)
    checks = [s for s in range(1, 31) if distributed.agreement_due(s, 0)]
    assert checks == [10, 20, 30]  # STOP_CHECK_STEPS apart: an all-reduce is a host sync
    assert [s for s in range(1, 31) if distributed.agreement_due(s, 7)] == [7, 10, 14, 20, 21, 28, 30]
    assert distributed.any_rank(True, False, device=torch.device("cpu")) == [True, False]  # not initialised: as given
