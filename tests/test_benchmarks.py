"""The benchmarks still run against the current template and report what they promise.

Tiny sizes: this checks that they work, not how fast anything is (timings belong to
the benchmarks themselves, run on a quiet machine).
"""

import re

from helpers import TEMPLATE_DIR, explain, python

BENCHMARKS = TEMPLATE_DIR / "benchmarks"


def test_data_loading_benchmark_reports_both_comparisons(tmp_path):
    proc = python(
        BENCHMARKS / "data_loading.py", "--images", "64", "--repeats", "1", "--num-workers", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, explain(proc)
    assert re.search(r"lazy +\d+ samples/s", proc.stdout), proc.stdout
    assert re.search(r"preload +\d+ samples/s", proc.stdout), proc.stdout
    assert re.search(r"ratio preload/lazy samples/s: \d+\.\dx", proc.stdout), proc.stdout
    assert re.search(r"ratio no-prefetch/prefetch: \d+\.\d\dx", proc.stdout), proc.stdout


def test_overhead_benchmark_compares_the_same_work_and_ends_with_the_ratio(tmp_path):
    proc = python(
        BENCHMARKS / "overhead.py", "--epochs", "1", "--pairs", "2", "--images", "128",
        "--image-size", "32", "--batch-size", "32", "--device", "cpu",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, explain(proc)
    # Both sides trained the same model on the same batches: identical metrics.
    diffs = re.findall(r"max metric diff (\S+)", proc.stdout)
    assert len(diffs) == 2 and all(float(d) == 0.0 for d in diffs), proc.stdout
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"ratio trainer/raw: \d+\.\d\d", last), proc.stdout
