"""The benchmarks still run against the current template and report what they promise.

Tiny sizes: this checks that they work, not how fast anything is (timings belong to
the benchmarks themselves, run on a quiet machine).
"""

import os
import re
import subprocess
import sys

import pytest
from helpers import TEMPLATE_DIR, explain, python

BENCHMARKS = TEMPLATE_DIR / "benchmarks"


def test_data_loading_benchmark_reports_both_comparisons(tmp_path):
    args = "--images 64 --repeats 1 --num-workers 0".split()
    proc = python(BENCHMARKS / "data_loading.py", *args, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert re.search(r"lazy +\d+ samples/s", proc.stdout), proc.stdout
    assert re.search(r"preload +\d+ samples/s", proc.stdout), proc.stdout
    assert re.search(r"ratio preload/lazy samples/s: \d+\.\dx", proc.stdout), proc.stdout
    prefetch = (
        r"ratio no-prefetch/prefetch: \d+\.\d\dx|prefetch: needs CUDA .*skipped on this machine"
    )
    assert re.search(prefetch, proc.stdout), proc.stdout


def test_image_decode_benchmark_compares_every_path(tmp_path):
    args = "--images 6 --width 400 --height 300 --size 48 --repeats 1 --workers 0".split()
    proc = python(BENCHMARKS / "image_decode.py", *args, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    out = proc.stdout
    for side in ["bare PIL, full", "old path", "bare PIL, draft", "lazy path now", "preload=disk"]:
        assert re.search(rf"^  {re.escape(side)}.* +\d+\.\d$", out, re.MULTILINE), out
    assert re.search(r"ratio lazy now / old path: \d+\.\d\dx", out), out
    assert re.search(r"ratio preload=disk epoch 2 / lazy epoch, 0 workers: \d+\.\dx", out), out


def test_export_latency_benchmark_times_both_sides_per_batch_size(tmp_path):
    args = "--models simple_cnn:32 mlp --batches 1 8 --iterations 2 --repeats 1".split()
    proc = python(BENCHMARKS / "export_latency.py", *args, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    number = r"(\d[\d.e+-]*)"
    row = rf"^(\w+) +(\S+) +(\d+) +{number} +{number} +(\d+\.\d\d)x$"
    rows = re.findall(row, proc.stdout, re.MULTILINE)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("simple_cnn", "3x32x32", "1"),
        ("simple_cnn", "3x32x32", "8"),
        ("mlp", "12", "1"),
        ("mlp", "12", "8"),
    ], proc.stdout
    for *_, eager, onnx, speedup in rows:  # the printed ratio is the two timings' ratio
        ratio = float(eager) / float(onnx)
        assert float(speedup) == pytest.approx(ratio, rel=0.02, abs=0.01), rows


def test_overhead_benchmark_compares_the_same_work_and_ends_with_the_ratio(tmp_path):
    args = "--epochs 1 --pairs 2 --images 128 --image-size 32 --batch-size 32 --device cpu".split()
    proc = python(BENCHMARKS / "overhead.py", *args, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    # Both sides trained the same model on the same batches: identical metrics.
    diffs = re.findall(r"max metric diff (\S+)", proc.stdout)
    # float sums in another order
    assert len(diffs) == 2 and all(float(d) < 1e-6 for d in diffs), proc.stdout
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"ratio trainer/raw: \d+\.\d\d", last), proc.stdout


def test_lightning_comparison_runs_without_lightning_and_says_so(tmp_path):
    # --no-lightning: the suite does not need lightning (a benchmark-only dependency).
    flags = "--no-lightning --epochs 1 --pairs 1 --images 128 --image-size 32 --batch-size 32"
    proc = python(BENCHMARKS / "lightning_compare.py", *flags.split(), cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert "--no-lightning: comparing generated and raw only" in proc.stdout, proc.stdout
    # The generated loop and the raw one trained the same model on the same batches.
    diffs = re.findall(r"generated vs raw metric diff (\S+)", proc.stdout)
    assert len(diffs) == 1 and float(diffs[0]) < 1e-6, proc.stdout  # float sums in another order
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"ratio generated/raw: \d+\.\d\d \(median of 1 pairs\)", last), proc.stdout


def test_tabular_benchmark_compares_with_scikit_learn_and_loads_a_big_csv(tmp_path):
    proc = python(
        BENCHMARKS / "tabular.py", "--seeds", "1", "--epochs", "2", "--rows", "500", cwd=tmp_path
    )
    assert proc.returncode == 0, explain(proc)
    for table in ("breast_cancer", "wine"):  # accuracies of the MLP, logistic, boosted; 2 ratios
        row = r"\s+\d+" + r"\s+[01]\.\d{4}" * 3 + r"\s+\d+\.\d{3}" * 2
        assert re.search(rf"^{table}{row}$", proc.stdout, re.MULTILINE), proc.stdout
    load = r"load 500 x 50 \(.*\): \d+\.\d s, peak RSS \d+\.\d\d GiB"
    assert re.search(load, proc.stdout), proc.stdout


def test_table_gaps_benchmark_compares_na_read_the_old_way_and_the_new(tmp_path):
    proc = python(BENCHMARKS / "table_gaps.py", "--quick", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    heading = r"^table +NA, old \(na_values=\[\]\) +NA, new +empty gaps$"
    assert re.search(heading, proc.stdout, re.MULTILINE), proc.stdout
    row = r"^wine" + r" +[01]\.\d{4}" * 3 + "$"  # one accuracy per side
    assert re.search(row, proc.stdout, re.MULTILINE), proc.stdout


def test_gpu_check_skips_without_cuda(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no CUDA even where the suite has one
    proc = subprocess.run(
        [sys.executable, BENCHMARKS / "gpu_check.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, explain(proc)
    assert proc.stdout.startswith("gpu_check: skipped: no CUDA device here"), proc.stdout


def test_gpu_check_runs_every_part_on_the_cpu_and_ends_with_the_verdict(tmp_path):
    # --cpu-smoke: every part at toy sizes, so the script is known to run before a GPU is lent.
    proc = python(BENCHMARKS / "gpu_check.py", "--cpu-smoke", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    out = proc.stdout
    for section, setting in [
        ("precision", "AMP fp16 \\+ GradScaler"),
        ("layout", "channels_last"),
        ("optimizer", "AdamW fused"),
        ("overhead", "generated Trainer"),
        ("data", "data.preload=device"),
        ("prefetch", "slow loader, prefetch 2"),
    ]:
        assert re.search(rf"^{section} +{setting} +\d+ +\d+\.\d\d ", out, re.MULTILINE), out
    # The correctness checks are judged on the CPU too (gloo instead of NCCL).
    assert "info  data.decode_device=cuda vs cpu: not run in --cpu-smoke (needs CUDA)" in out, out
    assert "PASS  torchrun (1 process) val metrics == evaluate.py" in out, out
    assert re.search(r"PASS  deterministic run.*: (\d+) of \1 tensors equal", out), out
    assert out.strip().splitlines()[-1] == "verdict: PASS", out


def test_recipe_benchmark_prints_every_part_as_table_rows(tmp_path):
    # --quick: 1 seed, 2 epochs, few arms: it runs and reports, it is no evidence.
    proc = python(BENCHMARKS / "recipe.py", "--quick", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    out = proc.stdout
    score = r"\d\.\d{3} ±-----"  # mean ±sd over seeds (no sd with 1 seed)
    delta = r"[+-]\d\.\d{3} ±-----"
    for task, arm in [
        ("k=5, 2 ep", "scratch"),
        ("10/class", "baseline"),
        ("imbalanced", "baseline"),
    ]:
        base = rf"^{re.escape(task)} +{re.escape(arm)} +{score} +{score} +\(base\) +\(base\)$"
        assert re.search(base, out, re.MULTILINE), out
    for task, arm in [
        ("k=5, 2 ep", "fine-tune"),
        ("k=5, 2 ep", "fine-tune, head kept"),
        ("10/class", "all"),
    ]:
        scores = rf"{score} +{score} +{delta} +{delta}"
        row = rf"^{re.escape(task)} +{re.escape(arm)} +{scores} +1 seed: no verdict$"
        assert re.search(row, out, re.MULTILINE), out
    fresh_vs_kept = rf"^k=5, 2 ep +fine-tune vs head kept +{delta} +{delta} +1 seed: no verdict$"
    assert re.search(fresh_vs_kept, out, re.MULTILINE), out
    rows = re.findall(r"^simple_cnn +(.+?) +(\d+\.\d\d) +(\d+\.\d\d)x$", out, re.MULTILINE)
    arms = ["plain", "ema 0.999", "mixup 0.2", "cutmix 1.0", "ema + mixup"]
    assert [arm for arm, *_ in rows] == arms, out
    plain = float(rows[0][1])
    for _arm, ms, ratio in rows:  # the printed ratio is the two timings' ratio
        assert float(ratio) == pytest.approx(float(ms) / plain, rel=0.02, abs=0.01), rows
    assert re.search(r"^wall time \d+ s$", out, re.MULTILINE), out


def test_preemption_benchmark_times_the_stop_check_on_every_step(tmp_path):
    args = "--pairs 2 --epochs 1 --images 128 --no-torchrun".split()
    proc = python(BENCHMARKS / "preemption.py", *args, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    out = proc.stdout
    steps = int(re.search(r"batch 64: (\d+) steps/epoch, 1 epochs per run", out)[1])
    for pair in (1, 2):
        pattern = rf"one process pair {pair}: on \S+ s, off \S+ s, ratio \d\.\d{{3}}$"
        assert re.search(pattern, out, re.M), out
    pattern = r"^one process: ratio on/off: \d\.\d{3} \(geometric mean of 2 pairs"
    assert re.search(pattern, out, re.M), out
    # The check ran after every optimizer step of the "on" runs, and only there.
    pattern = r"^one process: inside the check \S+ us per step \((\d+) steps\)"
    inside = re.search(pattern, out, re.M)
    assert inside and int(inside[1]) == 2 * steps, out


def test_regression_benchmark_compares_the_mlp_with_boosting_and_ridge(tmp_path):
    args = "--seeds 1 --epochs 3 --settings default smaller".split()
    proc = python(BENCHMARKS / "regression.py", *args, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    out = proc.stdout
    score = r"(-?\d+\.\d+) ±-+"  # mean ±sd over seeds (no sd with 1 seed)
    rmse = {}
    for name in ("HGB", "ridge", "MLP default", "MLP [32], dropout 0.2"):  # baselines first
        mlp = r" +(\d\.\d{3}) +(\d\.\d{3}) +([01])/1" if name.startswith("MLP") else ""
        row = rf"^{re.escape(name)} +{score} +{score}{mlp} +\d+\.\d$"
        found = re.search(row, out, re.MULTILINE)
        assert found, out
        rmse[name], r2, *versus = found.groups()
        rmse[name] = float(rmse[name])
        if name == "ridge":  # a linear fit of this table on 353 rows: well above 0, far below 1
            assert 0.2 < float(r2) < 0.6, out
        if versus:  # the printed ratios are the RMSEs' ratios; "beats ridge" says which is lower
            assert float(versus[0]) == pytest.approx(rmse[name] / rmse["HGB"], abs=2e-3), out
            assert float(versus[1]) == pytest.approx(rmse[name] / rmse["ridge"], abs=2e-3), out
            assert versus[2] == str(int(rmse[name] < rmse["ridge"])), out
    assert "MLP lr 1e-3, batch 32" not in out, out  # --settings trains only the settings named


def test_multilabel_benchmark_compares_the_mlp_with_one_vs_rest_logistic(tmp_path):
    proc = python(BENCHMARKS / "multilabel.py", "--seeds", "1", "--epochs", "2", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    out = proc.stdout
    score = r"(\d\.\d{3}) ±-----"  # mean ±sd over seeds (no sd with 1 seed)
    found = {}
    for name in ("logistic", "MLP"):
        versus = r" +(\d\.\d{3}) +(\d\.\d{3}) +([01])/1" if name == "MLP" else ""
        row = re.search(rf"^{name} +{score} +{score}{versus} +\d+\.\d$", out, re.MULTILINE)
        assert row, out
        found[name] = [float(value) for value in row.groups()]
    # Logistic regression on 8x8 digits: its tags are far from chance, not perfect.
    assert 0.8 < found["logistic"][0] < 1.0 and 0.7 < found["logistic"][1] < 1.0, out
    (mlp_map, mlp_f1, map_ratio, f1_ratio, ahead), (base_map, base_f1) = (
        found["MLP"],
        found["logistic"],
    )
    assert map_ratio == pytest.approx(mlp_map / base_map, abs=2e-3), out
    assert f1_ratio == pytest.approx(mlp_f1 / base_f1, abs=2e-3), out
    assert ahead == int(mlp_map > base_map), out
