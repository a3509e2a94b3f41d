"""Write a small, learnable tabular dataset: three classes of Gaussian blobs in CSV.

    python -m {{ cookiecutter.package_name }}.data.sample data/sample

Labels are strings (mapped to ids by the loader). Features have very different scales
(one is in the thousands) and one is pure noise, so standardisation matters.
"""

import csv
import random
import sys
from pathlib import Path

CLASS_CENTRES = {"alpha": (0.0, 0.0, 0.0), "beta": (3.0, 0.5, -2.0), "gamma": (-1.0, 3.5, 2.0)}
COLUMNS = ["x1", "x2", "x3", "income", "noise"]


def make_row(label: str, rng: random.Random) -> list:
    a, b, c = (m + rng.gauss(0.0, 1.0) for m in CLASS_CENTRES[label])
    income = 3000.0 + 800.0 * (a - b) + rng.gauss(0.0, 300.0)  # large scale on purpose
    return [round(a, 4), round(b, 4), round(c, 4), round(income, 2), round(rng.gauss(0.0, 1.0), 4), label]


def write_sample(root, train_rows: int = 600, val_rows: int = 150, seed: int = 0) -> Path:
    """Write `root/train.csv` and `root/val.csv`."""
    root = Path(root)
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train_rows), ("val", val_rows)):
        with open(root / f"{split}.csv", "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow([*COLUMNS, "label"])
            for i in range(count):
                writer.writerow(make_row(list(CLASS_CENTRES)[i % len(CLASS_CENTRES)], rng))
    return root


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "data/sample"
    print(f"wrote a sample table to {write_sample(target)}")
