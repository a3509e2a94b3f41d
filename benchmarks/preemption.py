"""The step-time cost of being preemptible: the generated Trainer with its stop check on vs off.

    python benchmarks/preemption.py [--pairs 6] [--epochs 2] [--images 1856] [--no-torchrun]
                                    [--template DIR]

After every optimizer step the Trainer asks whether a stop was requested (SIGTERM, SIGUSR1,
Ctrl-C) or a mid-epoch checkpoint is due (`Trainer.on_step`). In one process that is a few
Python comparisons; under torchrun the ranks agree every STOP_CHECK_STEPS steps with one small
all-reduce (a host sync each time). "off" replaces `Trainer.on_step` by a no-op; nothing else
differs (no checkpoint falls due: trainer.checkpoint_every_minutes=0, no signal arrives).

1. One process: an image_folder project (gpu=none), its sample images preloaded on the CPU,
   simple_cnn; both sides train the same epochs from the same seed, in interleaved pairs
   (on, off | off, on | ...). The time is the sum of the epochs' `time_s` in metrics.csv.
2. torchrun, 2 processes on gloo (gpu=multi render, the same data and model), each side a
   fresh `torchrun --standalone`; the time again from metrics.csv, so the launch is not
   counted.

Each part prints the per-pair ratios and their geometric mean, e.g. `ratio on/off: 1.00`.
The check's cost is in the noise of a busy machine: read the ratios' spread with it.
"""

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rendering import close_logging, import_project, quiet_fds, render_image_folder_project

LAUNCH = """\
import atexit, os, sys
sys.path[:0] = [{project!r}, {benchmarks!r}]
import train
from {package} import engine
from preemption import patch_on_step
inside = patch_on_step(engine.Trainer, os.environ["STOP_CHECK"])
def report():
    print(f"on_step: {{inside[0]}} calls, {{inside[1]:.6f}} s", file=sys.stderr)
if os.environ["STOP_CHECK"] == "on":
    atexit.register(report)
if __name__ == "__main__":
    sys.exit(train.main(sys.argv[1:]))
"""
INSIDE = re.compile(r"^on_step: (\d+) calls, (\d+\.\d+) s$", re.MULTILINE)


def patch_on_step(trainer_class, side: str) -> list:
    """Trainer.on_step off (a no-op) or on and timed; returns [calls, seconds inside it]."""
    real_on_step, inside = trainer_class.on_step, [0, 0.0]

    def timed_on_step(self, *args):
        start = time.perf_counter()
        try:
            return real_on_step(self, *args)
        finally:
            inside[0] += 1
            inside[1] += time.perf_counter() - start

    trainer_class.on_step = timed_on_step if side == "on" else lambda self, *args: None
    return inside


def epoch_seconds(run_dir: Path) -> float:
    with open(run_dir / "metrics.csv", newline="") as f:
        return sum(float(row["time_s"]) for row in csv.DictReader(f))


def one_process(m, overrides: list[str], runs: Path, side: str, index: int):
    """Train in this process with the stop check on or off: the epochs' seconds, and the calls
    of the check and the seconds spent inside it."""
    import train  # the rendered project's train.py (its folder is on sys.path)

    real_on_step = m.loop.Trainer.on_step
    inside = patch_on_step(m.loop.Trainer, side)
    try:
        with quiet_fds(2):
            code = train.main([*overrides, f"output_dir={runs}", f"run_name={side}-{index}"])
    finally:
        m.loop.Trainer.on_step = real_on_step
        close_logging(m)
    assert code == 0, f"train.py exited with {code}"
    return epoch_seconds(runs / f"{side}-{index}"), inside


def under_torchrun(project: Path, package: str, overrides, runs: Path, side: str, index: int):
    """Train with 2 processes on gloo with the stop check on or off; the epochs' seconds."""
    script = runs / "launch.py"
    script.write_text(
        LAUNCH.format(project=str(project), benchmarks=str(Path(__file__).parent), package=package)
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    command += [str(script), *overrides, f"output_dir={runs}", f"run_name={side}-{index}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STOP_CHECK": side}
    proc = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = INSIDE.findall(proc.stderr)  # one line per rank; the slower rank's
    inside = max(([int(n), float(t)] for n, t in found), key=lambda x: x[1], default=[0, 0.0])
    return epoch_seconds(runs / f"{side}-{index}"), inside


def compare(name: str, run, pairs: int) -> float:
    """Interleaved pairs of run(side, index); prints each pair, returns the ratio on/off."""
    run("on", -1), run("off", -1)  # warm-up: imports, first-call kernels
    ratios, calls, spent, on_total = [], 0, 0.0, 0.0
    for index in range(pairs):
        order = ("on", "off") if index % 2 == 0 else ("off", "on")
        results = {side: run(side, index) for side in order}
        seconds = {side: result[0] for side, result in results.items()}
        ratios.append(seconds["on"] / seconds["off"])
        calls, spent = calls + results["on"][1][0], spent + results["on"][1][1]
        on_total += seconds["on"]
        print(f"  {name} pair {index + 1}: on {seconds['on']:.3f} s, off {seconds['off']:.3f} s, "
              f"ratio {ratios[-1]:.3f}")  # fmt: skip
    # Whichever side runs first in a pair tends to be slower: over pairs of both orders the
    # geometric mean cancels that, the median may not.
    mean = statistics.geometric_mean(ratios)
    spread = f"median {statistics.median(ratios):.3f}, range {min(ratios):.3f} - {max(ratios):.3f}"
    print(f"{name}: ratio on/off: {mean:.3f} (geometric mean of {pairs} pairs; {spread})")
    print(f"{name}: inside the check {spent / max(calls, 1) * 1e6:.1f} us per step "
          f"({calls} steps), {spent / on_total:.3%} of the train and val time")  # fmt: skip
    return mean


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument(
        "--pairs", type=int, default=6, help="interleaved pairs (even: both orders alike)"
    )
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run")
    parser.add_argument("--images", type=int, default=1856, help="train images (29 steps of 64)")
    parser.add_argument("--no-torchrun", action="store_true", help="part 1 only")
    parser.add_argument("--template", type=Path, help="template to render (default: this one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        answers = {"use_prefetch": False, "use_github_actions": False}
        single = render_image_folder_project(
            tmp / "one", "bench stop", args.template, gpu="none", **answers
        )
        m = import_project(single)
        data_root = tmp / "images"
        per_class = -(-args.images // len(m.sample.CLASSES))
        m.sample.write_sample(data_root, train_per_class=per_class, val_per_class=per_class // 4)
        overrides = [
            f"data.root={data_root}", "data.preload=cpu", "data.image_size=64",
            "data.batch_size=64", "data.num_workers=0", f"trainer.epochs={args.epochs}",
            "trainer.checkpoint_every_minutes=0", "trainer.device=cpu",
        ]  # fmt: skip
        steps = -(-per_class * len(m.sample.CLASSES) // 64)
        images = per_class * len(m.sample.CLASSES)
        print(f"simple_cnn, {images} train images 64x64 preloaded, batch 64: {steps} steps/epoch, "
              f"{args.epochs} epochs per run, CPU")  # fmt: skip
        os.chdir(single)
        one = compare(
            "one process",
            lambda side, i: one_process(m, overrides, tmp / "runs-one", side, i),
            args.pairs,
        )
        if args.no_torchrun:
            return
        multi = render_image_folder_project(
            tmp / "multi", "bench stop ddp", args.template, gpu="multi", **answers
        )
        package = next(p.parent.name for p in multi.glob("*/config.py"))
        runs = tmp / "runs-ddp"
        runs.mkdir()

        def ddp(side, index):
            return under_torchrun(multi, package, overrides, runs, side, index)

        print(f"torchrun: 2 processes on gloo, {-(-steps // 2)} steps/epoch each")
        two = compare("torchrun", ddp, args.pairs)
        print(f"ratio on/off: one process {one:.2f}, torchrun {two:.2f}")


if __name__ == "__main__":
    main()
