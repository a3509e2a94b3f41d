"""Evidence for the training recipe of a generated project, side by side in one run, on digits.

    python benchmarks/recipe.py [--quick] [--seeds 3] [--jobs 2] [--threads 1] [--template DIR]

Data: scikit-learn's bundled digits (1797 8x8 grayscale images, 10 classes; no downloads), upscaled
to 24x24 PNGs in image_folder layouts. Every figure of parts 1-3 comes from the generated project's
own `python train.py key=value ...` (rendered with image_folder, gpu=none; simple_cnn on the CPU,
data.preload=cpu, data.horizontal_flip=false, data.mean/std fixed to those of all digits), read
from the LAST epoch's row of the run's metrics.csv (val_acc, val_macro_f1), not from the best
epoch, which val itself would pick. Each seed draws its own data subsets, init and batches; the
arms of a task share the seed, the epochs and the lr schedule, so a delta is paired per seed: the
table gives mean ±standard deviation over seeds.

1. Fine-tuning vs scratch with few labels: pretrain on digits 0-4 (all their images, one run),
   then train digits 5-9 from k labelled images per class (validated on the other 5-9 images),
   from scratch or from `model.weights=<pretrain>/checkpoints/best.pt`. Its 5-class head has the
   shape of the new one: `fine-tune` starts a fresh head (the checkpoint's classes differ from the
   data's: model.reset_head=auto), `fine-tune, head kept` loads the old head onto the new classes
   (model.reset_head=false, what a load by name and shape alone does). At a short and a longer
   budget; at the longer one also with the two ways docs/GUIDE.md offers to spare the pretrained
   features (freeze + warmup; backbone lr x0.1).
2. Each recipe item alone, and all together, vs the baseline (which already has the default
   random resized crop) on all 10 digits with a few train images per class and many epochs.
3. Class imbalance: train class i keeps round(60 * 0.6**i) images (at least 3), val is balanced;
   baseline vs trainer.class_weights=balanced vs data.balanced_sampler=true.
4. Cost per optimizer step of EMA, mixup and cutmix: the package imported, loaders, model and
   optimizer built as train.py builds them, `train_one_epoch` timed in interleaved rounds (median),
   on --threads torch threads (default 1: steady ratios when the machine is also busy).

verdict: "within noise" unless every seed's delta has the same sign and |mean| > 2 x its standard
error; then "negligible (<1 pt)" below 0.01, else "better" or "worse". 3 seeds make a weak test:
re-run with --seeds 5 before leaning on a single verdict. --quick (1 seed, few epochs and arms) is
a smoke test, not evidence.
"""

import argparse
import csv
import importlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image
from rendering import import_project, render_image_folder_project
from sklearn.datasets import load_digits

SIZE = 24  # pixels of the PNGs (and data.image_size of parts 1-3)
# fewshot: (k labelled images per class, epochs, with the GUIDE's variants) per task of part 1;
# *_val: val images per class.
FULL = SimpleNamespace(
    seeds=3, fewshot=((5, 5, False), (5, 15, True), (20, 15, True)), pretrain_epochs=8,
    per_class=10, recipe_epochs=30, recipe_val=60, recipe_arms=None, imbalance_epochs=20,
    imbalance_val=100, imbalance_arms=3, overhead_models=("simple_cnn", "resnet18"),
    overhead_images=320, rounds=3, min_timing_s=0.5,
)  # fmt: skip
QUICK = SimpleNamespace(
    seeds=1, fewshot=((5, 2, False),), pretrain_epochs=2, per_class=10,
    recipe_epochs=2, recipe_val=10, recipe_arms=("baseline", "all"), imbalance_epochs=2,
    imbalance_val=10, imbalance_arms=1, overhead_models=("simple_cnn",), overhead_images=256,
    rounds=1, min_timing_s=0.05,
)  # fmt: skip
NORMALISE = {}  # data.mean / data.std of all digits at SIZE, the same for every run (set in main)
ROW = "{:<14} {:<30} {:>13} {:>13} {:>14} {:>14}  {}"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 seed, few epochs and arms")
    parser.add_argument("--seeds", type=int, help="seeds per arm (default 3; --quick: 1)")
    jobs, help_jobs = min(4, os.cpu_count() or 1), "train.py runs at once, 1 thread each"
    parser.add_argument("--jobs", type=int, default=jobs, help=help_jobs)
    help_threads = "torch threads of part 4 (1: steady ratios on a busy machine)"
    parser.add_argument("--threads", type=int, default=1, help=help_threads)
    parser.add_argument("--template", type=Path, help="template to render (default: this one)")
    parser.add_argument("--parts", default="1234", help="parts to run, e.g. 1 or 34 (default all)")
    return parser.parse_args(argv)


def digit_images() -> tuple[list, np.ndarray]:
    digits = load_digits()
    pixels = (digits.images * (255 / 16)).round().astype(np.uint8)
    return [Image.fromarray(p).resize((SIZE, SIZE), Image.BILINEAR) for p in pixels], digits.target


def write_layout(root: Path, splits: dict, images: list, labels: np.ndarray) -> Path:
    """`<root>/<split>/<class>/<index>.png` for the image indices of each split."""
    for split, indices in splits.items():
        for i in indices:
            folder = root / split / str(labels[i])
            folder.mkdir(parents=True, exist_ok=True)
            images[i].save(folder / f"{i:04d}.png")
    return root


def class_order(labels: np.ndarray, seed: int) -> dict[int, list[int]]:
    """Per class, its image indices in a seeded random order: subsets are slices of it."""
    rng = np.random.default_rng(seed)
    return {c: rng.permutation(np.flatnonzero(labels == c)).tolist() for c in range(10)}


def first(order: dict, classes, start: int = 0, stop: int | None = None) -> list[int]:
    """order[c][start:stop] of every class c, concatenated."""
    return [i for c in classes for i in order[c][start:stop]]


def imbalanced_counts() -> list[int]:
    return [max(3, round(60 * 0.6**i)) for i in range(10)]


def write_data(root: Path, plan, images, labels) -> dict:
    """Every data root of parts 1-4: {(task, seed): path}."""
    write = partial(write_layout, images=images, labels=labels)
    pretrain = {"train": [int(i) for i in np.flatnonzero(labels < 5)]}  # val: data.val_fraction
    roots = {("pretrain", 0): write(root / "pretrain", pretrain)}
    top, counts, targets = max(k for k, *_ in plan.fewshot), imbalanced_counts(), range(5, 10)
    for seed in range(plan.seeds):
        order = class_order(labels, seed)
        for k in {k for k, *_ in plan.fewshot}:  # val: the same images for every k
            splits = {"train": first(order, targets, 0, k), "val": first(order, targets, top)}
            roots[f"k={k}", seed] = write(root / f"k{k}-{seed}", splits)
        n, stop = plan.per_class, plan.per_class + plan.recipe_val
        splits = {"train": first(order, range(10), 0, n), "val": first(order, range(10), n, stop)}
        roots["recipe", seed] = write(root / f"recipe-{seed}", splits)
        splits = {"train": [i for c in range(10) for i in order[c][: counts[c]]]}
        splits["val"] = first(order, range(10), max(counts), max(counts) + plan.imbalance_val)
        roots["imbalance", seed] = write(root / f"imbalance-{seed}", splits)
    order, n = class_order(labels, 0), plan.overhead_images // 10
    splits = {"train": first(order, range(10), 0, n), "val": first(order, range(10), 0, 2)}
    roots["overhead", 0] = write(root / "overhead", splits)
    return roots


def train(project: Path, runs: Path, name: str, root: Path, seed: int, overrides: list) -> dict:
    """One `python train.py` in the rendered project; the last epoch's row of its metrics.csv."""
    stats = [f"data.{key}=[{value:.4f}]" for key, value in NORMALISE.items()]
    args = [
        f"data.root={root}", f"output_dir={runs}", f"run_name={name}-{seed}", f"seed={seed}",
        "trainer.device=cpu", "data.num_workers=0", "trainer.progress_bar=false",
        "data.preload=cpu", "model.name=simple_cnn", "data.image_mode=L",
        f"data.image_size={SIZE}", "data.horizontal_flip=false", *stats, *overrides,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "train.py", *args], cwd=project, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"train.py {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    with open(runs / f"{name}-{seed}" / "metrics.csv", newline="") as file:
        last = list(csv.DictReader(file))[-1]
    return {key: float(value) for key, value in last.items()}


def recipe_steps(plan) -> int:
    return plan.recipe_epochs * math.ceil(10 * plan.per_class / 32)  # batch 32


def ema_decay(steps: int) -> float:
    """A decay whose horizon 1 / (1 - decay) is a quarter of the run's optimizer steps."""
    return round(1 - 4 / steps, 3)


def recipe_arms(plan) -> dict[str, list[str]]:
    decay = ema_decay(recipe_steps(plan))
    items = {
        "label_smoothing=0.1": ["trainer.label_smoothing=0.1"],
        "mixup_alpha=0.2": ["data.mixup_alpha=0.2"],
        "cutmix_alpha=1.0": ["data.cutmix_alpha=1.0"],
        "auto_augment=trivialaugment": ["data.auto_augment=trivialaugment"],
        "random_erasing=0.25": ["data.random_erasing=0.25"],
        f"ema_decay={decay}": [f"trainer.ema_decay={decay}"],
        "warmup_epochs=2": ["optim.warmup_epochs=2"],
    }
    arms = {"baseline": [], **items, "all": [o for options in items.values() for o in options]}
    return {k: v for k, v in arms.items() if plan.recipe_arms is None or k in plan.recipe_arms}


def experiments(plan, pretrained: Path) -> list[tuple]:
    """(part, task, arm, data key, overrides) of parts 1-3; the first arm of a task is its base."""
    rows, weights = [], f"model.weights={pretrained}"
    kept = [weights, "model.reset_head=false"]  # the old head on the new classes
    finetune = {"scratch": [], "fine-tune": [weights], "fine-tune, head kept": kept}
    variants = {  # docs/GUIDE.md: the fresh head first learns on features it cannot yet wreck
        "fine-tune +freeze 1, warmup 1": [
            weights, "model.freeze_backbone_epochs=1", "optim.warmup_epochs=1"
        ],
        "fine-tune +backbone_lr x0.1": [weights, "optim.backbone_lr_scale=0.1"],
    }  # fmt: skip
    for k, epochs, with_variants in plan.fewshot:
        options = [f"trainer.epochs={epochs}", "data.batch_size=16"]
        arms = {**finetune, **variants} if with_variants else finetune
        task = f"k={k}, {epochs} ep"
        rows += [(1, task, arm, f"k={k}", [*options, *o]) for arm, o in arms.items()]
    options = [f"trainer.epochs={plan.recipe_epochs}", "data.batch_size=32"]
    for arm, o in recipe_arms(plan).items():
        rows.append((2, f"{plan.per_class}/class", arm, "recipe", [*options, *o]))
    options = [f"trainer.epochs={plan.imbalance_epochs}", "data.batch_size=32"]
    imbalance = {
        "baseline": [], "class_weights=balanced": ["trainer.class_weights=balanced"],
        "balanced_sampler=true": ["data.balanced_sampler=true"],
    }  # fmt: skip
    for arm, o in list(imbalance.items())[: plan.imbalance_arms]:
        rows.append((3, "imbalanced", arm, "imbalance", [*options, *o]))
    return [row for row in rows if str(row[0]) in plan.parts]


def run_parts_1_to_3(plan, project: Path, out: Path, roots: dict, jobs: int) -> dict:
    """{(part, task, arm): [last-epoch row per seed]}, `jobs` runs at a time: the pretrain run
    and parts 2-3 first, part 1 once the pretrained weights are there."""
    runs = out / "runs"
    pretrained = runs / "pretrain-0" / "checkpoints" / "best.pt"
    rows, futures = experiments(plan, pretrained), {}
    with ThreadPoolExecutor(jobs) as pool:
        options = [f"trainer.epochs={plan.pretrain_epochs}"]
        pretrain = pool.submit(train, project, runs, "pretrain", roots["pretrain", 0], 0, options)
        for after_pretrain in (False, True):
            if after_pretrain:
                pretrain.result()
            for part, task, arm, data, options in rows:
                if (part == 1) != after_pretrain:
                    continue
                name = "".join(ch if ch.isalnum() else "_" for ch in f"p{part}-{task}-{arm}")
                for seed in range(plan.seeds):
                    job = pool.submit(train, project, runs, name, roots[data, seed], seed, options)
                    futures[part, task, arm, seed] = job
    seeds = range(plan.seeds)
    return {(p, t, a): [futures[p, t, a, s].result() for s in seeds] for p, t, a, *_ in rows}


def spread(values: list[float], signed: bool = False) -> str:
    mean = statistics.fmean(values)
    sd = f"{statistics.stdev(values):.3f}" if len(values) > 1 else "-----"
    return f"{mean:+.3f} ±{sd}" if signed else f"{mean:.3f} ±{sd}"


def verdict(deltas: list[float]) -> str:
    if len(deltas) < 2:
        return "1 seed: no verdict"
    mean, se = statistics.fmean(deltas), statistics.stdev(deltas) / math.sqrt(len(deltas))
    one_sign = all(d > 0 for d in deltas) or all(d < 0 for d in deltas)
    if not one_sign or abs(mean) <= 2 * se:
        return "within noise"
    if abs(mean) < 0.01:
        return "negligible (<1 pt)"
    return "better" if mean > 0 else "worse"


def deltas(rows: list[dict], base: list[dict], key: str) -> list[float]:
    """rows[i][key] - base[i][key]: the paired per-seed differences."""
    return [row[key] - b[key] for row, b in zip(rows, base, strict=True)]


def print_parts_1_to_3(results: dict, plan) -> None:
    titles = {
        1: f"1. fine-tune vs scratch: pretrain on digits 0-4 ({plan.pretrain_epochs} epochs), "
        "then digits 5-9 from k labelled images/class, batch 16; val: the other 5-9 images "
        "(verdict on d_acc)",
        2: f"2. recipe items vs baseline: 10 digits, {plan.per_class} train and "
        f"{plan.recipe_val} val images/class, {plan.recipe_epochs} epochs = "
        f"{recipe_steps(plan)} steps of batch 32 (verdict on d_acc)",
        3: f"3. imbalance: train counts {imbalanced_counts()} (digits 0-9), val "
        f"{plan.imbalance_val}/class, {plan.imbalance_epochs} epochs, batch 32 (verdict on d_f1)",
    }
    header = ROW.format("task", "arm", "val_acc", "val_macro_f1", "d_acc", "d_f1", "verdict")
    bases = {}
    for (part, task, arm), rows in results.items():
        if part not in {part for part, _task in bases}:
            print(f"\n{titles[part]}\n{header}")
        base = bases.setdefault((part, task), rows)
        acc, f1 = ([row[key] for row in rows] for key in ("val_acc", "val_macro_f1"))
        if base is rows:
            print(ROW.format(task, arm, spread(acc), spread(f1), "(base)", "(base)", "").rstrip())
            continue
        d_acc, d_f1 = (deltas(rows, base, key) for key in ("val_acc", "val_macro_f1"))
        judged = verdict(d_f1 if part == 3 else d_acc)
        print(ROW.format(task, arm, spread(acc), spread(f1), spread(d_acc, True),
                         spread(d_f1, True), judged))  # fmt: skip
        if arm == "fine-tune, head kept":  # the fresh head against the old one, paired per seed
            fresh = results[part, task, "fine-tune"]
            d_acc, d_f1 = (deltas(fresh, rows, key) for key in ("val_acc", "val_macro_f1"))
            cells = spread(d_acc, True), spread(d_f1, True), verdict(d_acc)
            print(ROW.format(task, "fine-tune vs head kept", "", "", *cells))
    steps = recipe_steps(plan)
    print(f"(ema_decay={ema_decay(steps)}: 1 / (1 - decay) = {round(1 / (1 - ema_decay(steps)))} "
          f"steps, a quarter of the run's {steps}; at 0.999 the average would still hold "
          f"{0.999 ** (steps - 1):.0%} of the first step's weights at the end)")  # fmt: skip


def timed_epochs(m, root: Path, model_name: str, overrides: list):
    """(seconds per step of `epochs` calls of `train_one_epoch`, steps per epoch), set up as
    train.py sets up a run: loaders, model, criterion, optimizer and EMA from the config."""
    ema_module = importlib.import_module(f"{m.pkg}.ema")
    cfg = m.config.load_config(None, [
        f"data.root={root}", "trainer.device=cpu", "data.num_workers=0", "data.preload=cpu",
        "trainer.progress_bar=false", "data.image_mode=L", "data.image_size=32",
        "data.batch_size=64", "data.horizontal_flip=false", f"model.name={model_name}",
        *(f"data.{key}=[{value:.4f}]" for key, value in NORMALISE.items()), *overrides,
    ])  # fmt: skip
    loader, _, data_info = m.data.build_dataloaders(cfg)  # mixup/cutmix: in its batch transform
    m.seed_everything(0)
    model = m.models.build_model(cfg, data_info)
    criterion, optimizer = torch.nn.CrossEntropyLoss(), m.loop.build_optimizer(cfg, model)
    ema, device = ema_module.build_ema(cfg, model), torch.device("cpu")
    one_epoch = m.loop.train_one_epoch  # its `ema` argument: the average updated after each step

    kwargs = {"device": device, "cfg": cfg, "ema": ema}

    def seconds_per_step(epochs: int) -> float:
        start, steps = time.perf_counter(), 0
        for _ in range(epochs):
            stats = one_epoch(model, criterion, optimizer, loader, epoch=0, **kwargs)
            steps += stats["steps"]
        return (time.perf_counter() - start) / steps

    return seconds_per_step, len(loader)


def part_4(plan, project: Path, root: Path) -> None:
    m = import_project(project)
    ema, mixup = "trainer.ema_decay=0.999", "data.mixup_alpha=0.2"
    arms = {
        "plain": [], "ema 0.999": [ema], "mixup 0.2": [mixup],
        "cutmix 1.0": ["data.cutmix_alpha=1.0"], "ema + mixup": [ema, mixup],
    }  # fmt: skip
    print(f"\n4. cost per optimizer step: train_one_epoch on {torch.get_num_threads()} thread(s), "
          f"{plan.overhead_images} digits at 32x32 grayscale, batch 64, median of {plan.rounds} "
          "interleaved rounds")  # fmt: skip
    print(f"{'model':<12} {'arm':<12} {'ms/step':>9} {'x plain':>8}")
    for model_name in plan.overhead_models:
        sides = {arm: timed_epochs(m, root, model_name, o) for arm, o in arms.items()}
        epoch_s = max(side(1) * steps for side, steps in sides.values())  # warm-up; the slowest
        epochs = max(1, math.ceil(plan.min_timing_s / epoch_s))
        times = {arm: [] for arm in arms}
        for index in range(plan.rounds):  # A/B/..., then reversed: drift hits every side alike
            for arm in list(arms) if index % 2 == 0 else list(arms)[::-1]:
                times[arm].append(sides[arm][0](epochs))
        plain = statistics.median(times["plain"])
        for arm, values in times.items():
            seconds = statistics.median(values)
            print(f"{model_name:<12} {arm:<12} {seconds * 1000:>9.2f} {seconds / plain:>7.2f}x")
        noise = (max(times["plain"]) - min(times["plain"])) / plain
        if plan.rounds > 1:
            print(f"({model_name}: plain's own rounds span {noise:.0%} of its median; {epochs} "
                  "epoch(s) per round)")  # fmt: skip


def main(argv=None) -> int:
    args = parse_args(argv)
    plan = SimpleNamespace(**vars(QUICK if args.quick else FULL))
    plan.seeds = args.seeds or plan.seeds
    plan.parts = args.parts
    start = time.perf_counter()
    images, labels = digit_images()
    pixels = np.stack([np.asarray(image) for image in images]) / 255
    NORMALISE.update(mean=pixels.mean(), std=pixels.std())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        project = render_image_folder_project(out, "recipe bench", args.template, gpu="none")
        roots = write_data(out / "data", plan, images, labels)
        print(f"torch {torch.__version__}, simple_cnn at {SIZE}x{SIZE} grayscale, {plan.seeds} "
              f"seed(s), {args.jobs} train.py runs at once; figures: last epoch, mean ±sd over "
              "seeds; d_*: paired per-seed difference to the task's base row")  # fmt: skip
        results = run_parts_1_to_3(plan, project, out, roots, args.jobs)
        print_parts_1_to_3(results, plan)
        torch.set_num_threads(args.threads)
        if "4" in plan.parts:
            part_4(plan, project, roots["overhead", 0])
    print(f"\nwall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
