"""Tables as they come: the generated MLP against scikit-learn, and the load cost of a big CSV.

    python benchmarks/tabular.py                       # accuracy on 2 shipped tables, 1M x 50 load
    python benchmarks/tabular.py --rows 20000 --seeds 1

1. Accuracy. scikit-learn's breast-cancer and wine tables, made to look like real exports: one
   informative feature turned into a categorical column (named levels), one into a column of 40
   levels (an embedding in the MLP), and 5% of the cells emptied. The same seeded, stratified
   80/20 split for every model: the generated project's MLP (its default recipe, 30 epochs, the
   accuracy of the last epoch: no model selection on the held-out rows), a one-hot + median-impute
   + standardise LogisticRegression pipeline, and HistGradientBoostingClassifier.
2. Scale. A generated CSV of --rows x 50 columns (40 numeric with 5% gaps, 10 categorical)
   read, fitted and encoded by the project's `build_datasets`, in a fresh process: wall time
   and peak RSS.

Measured at 1M x 50 on 2 cores (side by side, same file, load average 1.3): read in chunks of
100,000 rows, 4.0-4.2 s wall, 4.8-5.1 s of CPU, peak RSS 1.61 GiB (0.58 GiB after imports); the
same code reading the whole file in one pandas call: 3.3 s, 1.70-1.86 GiB. The hand-written reader
before pandas: 46.7 s, 1.84 GiB.

scikit-learn is a benchmark-only dependency (benchmarks/requirements.txt), never the project's.
"""

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rendering import fit_generated, import_project, quiet_fds, render_image_folder_project


def messy_table(name: str, seed: int):
    """(header, rows of text cells, labels): a shipped table with categorical columns and gaps."""
    from sklearn import datasets

    data = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine}[name]()
    x, y, names = data.data, data.target, [n.replace(" ", "_") for n in data.feature_names]
    rng = random.Random(seed)
    # The two features most correlated with the label become categorical: 4 named bins and 40 bins.
    order = sorted(range(x.shape[1]), key=lambda j: -abs(_corr(x[:, j], y)))
    few, many = order[0], order[1]
    kept = [j for j in range(x.shape[1]) if j not in (few, many)]
    header = [names[j] for j in kept] + [f"{names[few]}_band", f"{names[many]}_bin"]
    rows = []
    for i in range(len(y)):
        band = ["low", "mid", "high", "top"][_bin(x[:, few], x[i, few], 4)]
        cells = [f"{x[i, j]:.6g}" for j in kept] + [
            band,
            f"b{_bin(x[:, many], x[i, many], 40):02d}",
        ]
        rows.append(["" if rng.random() < 0.05 else cell for cell in cells])
    return header, rows, [str(data.target_names[t]) for t in y]


def _corr(a, b) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / ((a * a).sum() * (b * b).sum()) ** 0.5)


def _bin(column, value, bins: int) -> int:
    low, high = column.min(), column.max()
    return min(bins - 1, int((value - low) / (high - low + 1e-12) * bins))


def write_csv(path: Path, header, rows, labels) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*header, "label"])
        writer.writerows([*row, label] for row, label in zip(rows, labels, strict=True))


def sklearn_scores(header, train_rows, train_labels, val_rows, val_labels, seed: int) -> dict:
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    cat = [j for j, name in enumerate(header) if name.endswith(("_band", "_bin"))]
    num = [j for j in range(len(header)) if j not in cat]

    def arrays(rows):
        table = np.array(rows, dtype=object)
        table[:, num] = [[float(c) if c else np.nan for c in row] for row in table[:, num]]
        return table

    x_train, x_val = arrays(train_rows), arrays(val_rows)
    impute_scale = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
    )
    one_hot = OneHotEncoder(handle_unknown="ignore")  # "" (a gap) is a level of its own
    logistic = make_pipeline(
        ColumnTransformer([("num", impute_scale, num), ("cat", one_hot, cat)]),
        LogisticRegression(max_iter=5000),
    )
    ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan)
    boosted = make_pipeline(
        ColumnTransformer([("cat", ordinal, cat), ("num", "passthrough", num)]),
        HistGradientBoostingClassifier(
            categorical_features=list(range(len(cat))), random_state=seed
        ),
    )
    scores = {}
    for name, model in (("logistic", logistic), ("boosted_trees", boosted)):
        model.fit(x_train, train_labels)
        scores[name] = float((model.predict(x_val) == np.array(val_labels)).mean())
    return scores


def mlp_score(m, root: Path, out: Path, epochs: int, seed: int, extra=()) -> float:
    """The generated MLP trained on `root` (`extra`: more overrides): its last val_acc."""
    overrides = [
        f"data.root={root}", f"output_dir={out}", f"run_name=mlp-{root.name}", f"seed={seed}",
        f"trainer.epochs={epochs}", "trainer.device=cpu", "trainer.progress_bar=false",
        "data.drop_columns=[]", *extra,
    ]  # fmt: skip
    cfg = m.config.load_config(overrides=overrides)
    m.seed_everything(m.utils.derive_seed(cfg.seed, "init"))
    loaders = m.data.build_dataloaders(cfg)
    model = m.models.build_model(cfg, loaders[2])
    with quiet_fds(2):
        history = fit_generated(m, cfg, model, loaders, out / cfg.run_name, "cpu")
    return history[-1]["val_acc"]


def compare_accuracy(m, work: Path, seeds: int, epochs: int) -> None:
    from sklearn.model_selection import train_test_split

    print(f"accuracy on the held-out 20% (mean of {seeds} splits), MLP: last of {epochs} epochs")
    heading = ["table", "rows", "MLP", "logistic", "boosted", "MLP/logistic", "MLP/boosted"]
    print("".join(f"{h:<15}" if i == 0 else f"{h:>13}" for i, h in enumerate(heading)))
    for name in ("breast_cancer", "wine"):
        totals = {"mlp": 0.0, "logistic": 0.0, "boosted_trees": 0.0}
        for seed in range(seeds):
            header, rows, labels = messy_table(name, seed)
            ids = range(len(rows))
            splits = train_test_split(ids, test_size=0.2, random_state=seed, stratify=labels)
            (train_rows, train_labels), (val_rows, val_labels) = (
                ([rows[i] for i in chosen], [labels[i] for i in chosen]) for chosen in splits
            )
            root = work / f"{name}-{seed}"
            root.mkdir()
            write_csv(root / "train.csv", header, train_rows, train_labels)
            write_csv(root / "val.csv", header, val_rows, val_labels)
            scores = sklearn_scores(header, train_rows, train_labels, val_rows, val_labels, seed)
            scores["mlp"] = mlp_score(m, root, work / "runs", epochs, seed)
            for key, value in scores.items():
                totals[key] += value / seeds
        mlp, logistic, boosted = totals["mlp"], totals["logistic"], totals["boosted_trees"]
        cells = [f"{len(rows)}", *(f"{v:.4f}" for v in (mlp, logistic, boosted))]
        cells += [f"{mlp / logistic:.3f}", f"{mlp / boosted:.3f}"]
        print(f"{name:<15}" + "".join(f"{cell:>13}" for cell in cells))


def write_big_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    sizes = [3, 5, 8, 12, 20, 40, 60, 100, 200, 500]
    levels = [[f"l{j}_{k}" for k in range(n)] for j, n in enumerate(sizes)]
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([f"x{j}" for j in range(40)] + [f"c{j}" for j in range(10)] + ["label"])
        for i in range(rows):
            cells = ["" if rng.random() < 0.05 else f"{rng.gauss(0, 1):.5f}" for _ in range(40)]
            writer.writerow(cells + [rng.choice(levels[j]) for j in range(10)] + ["abc"[i % 3]])


def pandas_once(root: Path) -> None:
    """In a fresh process: pandas.read_csv of the same file (for reference only)."""
    import pandas

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    pandas.read_csv(root / "train.csv")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak": peak, "baseline": baseline}))


def load_once(project: Path, root: Path) -> None:
    """In a fresh process: build the datasets from root/train.csv; print time and peak RSS."""
    m = import_project(project)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cfg = m.config.load_config(overrides=[f"data.root={root}", "data.drop_columns=[]"])
    start, cpu = time.perf_counter(), time.process_time()
    train_set, val_set, info = m.data.build_datasets(cfg)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    shape = [len(train_set) + len(val_set), info["num_features"]]
    result = {"seconds": seconds, "cpu": cpu, "peak": peak, "baseline": baseline, "encoded": shape}
    print(json.dumps(result))


def measure_load(project: Path, work: Path, rows: int) -> None:
    root = work / "big"
    root.mkdir()
    start = time.perf_counter()
    write_big_csv(root / "train.csv", rows)
    size = (root / "train.csv").stat().st_size
    seconds = time.perf_counter() - start
    print(f"\nwrote a {rows:,} x 50 CSV ({size / 2**20:.0f} MiB) in {seconds:.1f} s")
    gib = 2**30
    result = fresh_process("--load-only", str(project), str(root))
    print(
        f"load {rows:,} x 50 (read, fit on train, encode to {result['encoded'][1]} columns): "
        f"{result['seconds']:.1f} s, peak RSS {result['peak'] / gib:.2f} GiB "
        f"({(result['peak'] - result['baseline']) / gib:.2f} GiB above after imports); "
        f"CPU {result['cpu']:.1f} s; load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores"
    )
    try:
        import pandas  # noqa: F401  (a reference only, from benchmarks/requirements.txt)
    except ImportError:
        print("pandas.read_csv of the same file: pandas is not installed, skipped")
        return
    result = fresh_process("--pandas-only", str(root))
    print(
        f"pandas.read_csv of the same file (parsing only): {result['seconds']:.1f} s, "
        f"{(result['peak'] - result['baseline']) / gib:.2f} GiB above the process after imports"
    )


def fresh_process(*args: str) -> dict:
    command = [sys.executable, __file__, *args]
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the load test's CSV")
    hidden = {"nargs": 2, "metavar": ("PROJECT", "ROOT"), "help": argparse.SUPPRESS}
    parser.add_argument("--load-only", **hidden)
    parser.add_argument("--pandas-only", metavar="ROOT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_only:
        return load_once(*map(Path, args.load_only))
    if args.pandas_only:
        return pandas_once(Path(args.pandas_only))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        answers = {"dataset_type": "tabular_csv", "gpu": "none"}
        project = render_image_folder_project(work, "Tables", **answers)
        m = import_project(project)
        compare_accuracy(m, work, args.seeds, args.epochs)
        measure_load(project, work, args.rows)


if __name__ == "__main__":
    main()
