"""DistributedDataParallel under torchrun, on the CPU (gloo): whole-set val metrics, rank 0 writes, resume, crashes."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import PROJECT_DIR, fast_overrides

from {{ cookiecutter.package_name }}.data import ShardSampler, seed_worker_for_rank
from {{ cookiecutter.package_name }}.data.preload import PreloadedLoader

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


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, data_root):
    """One epoch with 2 processes, then a resume to 2 epochs, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("ddp")
    overrides = fast_overrides(tmp, data_root, run_name="ddp", **{"data.num_workers": 1})
    first = torchrun(tmp, PROJECT_DIR / "train.py", *overrides)
    assert first.returncode == 0, explain(first)
    run_dir = tmp / "runs" / "ddp"
    after_one = metrics(run_dir)
    resumed = torchrun(tmp, PROJECT_DIR / "train.py", "--resume", run_dir, "trainer.epochs=2")
    assert resumed.returncode == 0, explain(resumed)
    return run_dir, after_one, first, resumed


def test_val_metrics_equal_a_single_process_evaluation(ddp_run, run_script):
    run_dir, after_one, _, _ = ddp_run
    rows = metrics(run_dir)
    assert [row["epoch"] for row in after_one] == ["1"] and [row["epoch"] for row in rows] == ["1", "2"]
    result = evaluate_alone(run_script, run_dir / "checkpoints" / "last.pt")
    assert result["epoch"] == 2
    assert result["loss"] == pytest.approx(float(rows[-1]["val_loss"]), abs=1e-6)
    assert result["accuracy"] == pytest.approx(float(rows[-1]["val_acc"]), abs=1e-9)


def test_rank_zero_alone_writes_and_logs(ddp_run):
    run_dir, _, first, _ = ddp_run
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
