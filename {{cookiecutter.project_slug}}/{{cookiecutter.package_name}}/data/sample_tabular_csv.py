"""Write a small, learnable table the way tables come: three classes of Gaussian blobs in CSV.

    python -m {{ cookiecutter.package_name }}.data.sample data/sample

Like an export from a database: an `id` column (dropped by data.drop_columns), the label second,
string labels, a categorical `color` (one-hot), a `city` with many levels (a learned embedding),
about 5% empty cells, features on very different scales (`income` is in the thousands) and one
that is pure noise.
"""

import csv
import random
import sys
from pathlib import Path

CLASS_CENTRES = {"alpha": (0.0, 0.0, 0.0), "beta": (3.0, 0.5, -2.0), "gamma": (-1.0, 3.5, 2.0)}
CLASS_COLORS = {"alpha": "red", "beta": "green", "gamma": "blue"}
CITIES = [f"city_{i:02d}" for i in range(24)]  # 8 per class, more levels than data.embedding_threshold
COLUMNS = ["id", "label", "x1", "x2", "x3", "color", "income", "city", "noise"]
GAPS = ("x1", "income", "color")  # columns with about 5% empty cells


def make_row(i: int, label: str, rng: random.Random) -> list:
    a, b, c = (m + rng.gauss(0.0, 1.0) for m in CLASS_CENTRES[label])
    income = 3000.0 + 800.0 * (a - b) + rng.gauss(0.0, 300.0)  # large scale on purpose
    color = CLASS_COLORS[label] if rng.random() < 0.7 else rng.choice(list(CLASS_COLORS.values()))
    k = list(CLASS_CENTRES).index(label)
    city = CITIES[8 * k + rng.randrange(8)] if rng.random() < 0.5 else rng.choice(CITIES)
    row = {"id": f"r{i:05d}", "label": label, "x1": round(a, 4), "x2": round(b, 4), "x3": round(c, 4)}
    row |= {"color": color, "income": round(income, 2), "city": city, "noise": round(rng.gauss(0.0, 1.0), 4)}
    for column in GAPS:
        if rng.random() < 0.05:
            row[column] = ""
    return [row[column] for column in COLUMNS]


def write_sample(root, train_rows: int = 600, val_rows: int = 150, seed: int = 0) -> Path:
    """Write `root/train.csv` and `root/val.csv`."""
    root = Path(root)
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    start = 0
    for split, count in (("train", train_rows), ("val", val_rows)):
        with open(root / f"{split}.csv", "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(COLUMNS)
            for i in range(start, start + count):
                writer.writerow(make_row(i, list(CLASS_CENTRES)[i % len(CLASS_CENTRES)], rng))
        start += count
    return root


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "data/sample"
    print(f"wrote a sample table to {write_sample(target)}")
