"""Multi-label on a shipped table: the generated MLP against a one-vs-rest logistic pipeline.

    python benchmarks/multilabel.py                       # 5 seeded splits, 30 epochs
    python benchmarks/multilabel.py --seeds 1 --epochs 3  # a smoke test

scikit-learn's digits (1,797 handwritten digits as 8x8 grey levels 0-16) as a table: 64 numeric
columns `pixel_0` .. `pixel_63` and a `tags` column. The tags are facts about the digit written,
not about the pixels, derived from the dataset's own labels by one fixed rule:
    even  0 2 4 6 8      loop  0 6 8 9      large  5 6 7 8 9      prime  2 3 5 7
so a 1 has no tag at all (an empty cell: a valid sample) and an 8 has three. For each seed every
method reads the same train.csv / val.csv / test.csv of one seeded 60/20/20 split, stratified by
digit:
- the generated project's MLP: a `dataset_type=tabular_csv task=multilabel gpu=none` render, run
  as a user runs it: `python train.py` with its default recipe for --epochs epochs (best.pt picked
  by val_map, per-label thresholds tuned on val), then `python evaluate.py <run> --split test`;
- one-vs-rest logistic regression: standardise, then one LogisticRegression per tag (C=1), its
  thresholds tuned on val per tag to maximise F1 by the same rule, then applied to test.
mAP (the mean over tags of scikit-learn's average_precision_score) and micro F1 (at the val-tuned
thresholds) are scored on test, means over the seeds with their std; MLP/logistic is the ratio of
the means; "ahead": on how many splits the MLP's score is above the pipeline's.

Measured on 2 CPU cores shared with other jobs: see README.md (Benchmarks) for the table.

scikit-learn is a benchmark-only dependency (benchmarks/requirements.txt), never the project's.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rendering import render_image_folder_project

TAGS = {
    "even": {0, 2, 4, 6, 8},
    "loop": {0, 6, 8, 9},
    "large": {5, 6, 7, 8, 9},
    "prime": {2, 3, 5, 7},
}
SEPARATOR = ";"


def write_split(root: Path, seed: int) -> None:
    """train/val/test.csv of one seeded 60/20/20 split of digits, stratified by digit."""
    import pandas
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    frame = pandas.DataFrame(digits.data.astype(int), columns=[f"pixel_{i}" for i in range(64)])
    frame["tags"] = [SEPARATOR.join(t for t, ds in TAGS.items() if d in ds) for d in digits.target]
    train, rest = train_test_split(frame, test_size=0.4, random_state=seed, stratify=digits.target)
    val, test = train_test_split(
        rest, test_size=0.5, random_state=seed, stratify=digits.target[rest.index]
    )
    root.mkdir(parents=True)
    for name, part in (("train", train), ("val", val), ("test", test)):
        part.to_csv(root / f"{name}.csv", index=False)


def read_split(root: Path, name: str):
    """(pixels, 0/1 tag matrix) of one split, as the files hold them."""
    import numpy as np
    import pandas

    table = pandas.read_csv(root / f"{name}.csv", keep_default_na=False)
    tags = [set(cell.split(SEPARATOR)) - {""} for cell in table.pop("tags")]
    y = np.array([[tag in row for tag in TAGS] for row in tags], dtype=int)
    return table.to_numpy(dtype=float), y


def f1_thresholds(y, scores):
    """Per tag, the score threshold (predict >= it) with the highest F1 on (y, scores); ties: the
    lowest such threshold."""
    import numpy as np

    thresholds = []
    for j in range(y.shape[1]):
        order = np.argsort(-scores[:, j], kind="stable")
        s, t = scores[order, j], y[order, j]
        tp = np.cumsum(t)
        fp = np.cumsum(1 - t)
        f1 = 2 * tp / (2 * tp + fp + (t.sum() - tp))  # predicting the first k+1 as positive
        last = np.r_[s[1:] != s[:-1], True]  # only where the score changes: ties go together
        best = np.flatnonzero(last)[np.argmax(f1[last])]
        thresholds.append(float(s[best]))
    return np.array(thresholds)


def logistic_scores(root: Path) -> dict:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, f1_score
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        read_split(root, name) for name in ("train", "val", "test")
    )
    model = make_pipeline(
        StandardScaler(), OneVsRestClassifier(LogisticRegression(C=1.0, max_iter=5000))
    )
    model.fit(x_train, y_train)
    thresholds = f1_thresholds(y_val, model.predict_proba(x_val))
    scores = model.predict_proba(x_test)
    predicted = (scores >= thresholds).astype(int)
    return {
        "map": float(
            np.mean([average_precision_score(y_test[:, j], scores[:, j]) for j in range(4)])
        ),
        "micro_f1": float(f1_score(y_test, predicted, average="micro")),
        "seconds": time.perf_counter() - start,
    }


def mlp_scores(project: Path, root: Path, run: str, epochs: int, seed: int) -> dict:
    """The generated project as a user runs it: train.py, then evaluate.py on the test split."""
    start = time.perf_counter()
    overrides = [
        f"data.root={root}", f"run_name={run}", f"seed={seed}", f"trainer.epochs={epochs}",
        "data.label_column=[tags]", "trainer.device=cpu", "trainer.progress_bar=false",
    ]  # fmt: skip
    command = [sys.executable, "train.py", *overrides]
    subprocess.run(command, cwd=project, check=True, capture_output=True)
    command = [sys.executable, "evaluate.py", f"runs/{run}", "--split", "test"]
    proc = subprocess.run(command, cwd=project, check=True, capture_output=True, text=True)
    report = json.loads(proc.stdout)
    return {
        "map": report["map"],
        "micro_f1": report["micro_f1"],
        "seconds": time.perf_counter() - start,
    }


def run_all(project: Path, work: Path, seeds: int, epochs: int) -> dict:
    scores = {name: {"map": [], "micro_f1": [], "seconds": 0.0} for name in ("MLP", "logistic")}
    for seed in range(seeds):
        root = work / f"digits-{seed}"
        write_split(root, seed)
        for name, score in (
            ("logistic", logistic_scores(root)),
            ("MLP", mlp_scores(project, root, f"seed-{seed}", epochs, seed)),
        ):
            scores[name]["map"].append(score["map"])
            scores[name]["micro_f1"].append(score["micro_f1"])
            scores[name]["seconds"] += score["seconds"]
    return scores


def print_table(scores: dict, seeds: int, epochs: int) -> None:
    def mean_sd(values) -> str:
        sd = f"{statistics.stdev(values):.3f}" if len(values) > 1 else "-----"
        return f"{statistics.mean(values):.3f} ±{sd}"

    print(f"test 20% of {seeds} seeded splits, mean ±std; MLP: best.pt of {epochs} epochs")
    heading = f"{'mAP':>14}{'micro F1':>14}{'mAP ratio':>11}{'F1 ratio':>10}{'ahead':>7}"
    print(f"{'model':<10}{heading}{'time s':>8}")
    for name in ("MLP", "logistic"):
        score, versus = scores[name], " " * 28
        if name == "MLP":
            base = scores["logistic"]
            ratios = [
                statistics.mean(score[k]) / statistics.mean(base[k]) for k in ("map", "micro_f1")
            ]
            wins = sum(a > b for a, b in zip(score["map"], base["map"], strict=True))
            versus = f"{ratios[0]:>11.3f}{ratios[1]:>10.3f}{f'{wins}/{seeds}':>7}"
        cells = f"{mean_sd(score['map']):>14}{mean_sd(score['micro_f1']):>14}{versus}"
        print(f"{name:<10}{cells}{score['seconds']:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        answers = {"dataset_type": "tabular_csv", "task": "multilabel", "gpu": "none"}
        project = render_image_folder_project(work, "Digit Tags", **answers)
        scores = run_all(project, work, args.seeds, args.epochs)
    print_table(scores, args.seeds, args.epochs)
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
