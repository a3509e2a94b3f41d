"""Write a small, learnable table the way tables come: house prices in CSV.

    python -m {{ cookiecutter.package_name }}.data.sample data/sample

Like an export from a database: an `id` column (dropped by data.drop_columns), the target second
(`price`, in thousands), a categorical `color` (one-hot), a `city` with many levels (a learned
embedding) that moves the price, about 5% empty cells, features on very different scales (`income`
is in the thousands) and one that is pure noise. The price is a smooth function of the features plus
noise, so a model can learn most of it (R2 near 0.9) but not all.
"""

import csv
import random
import sys
from pathlib import Path

COLORS = {"red": 12.0, "green": -8.0, "blue": 0.0}  # the price each colour adds
CITIES = [f"city_{i:02d}" for i in range(24)]  # more levels than data.embedding_threshold
COLUMNS = ["id", "price", "x1", "x2", "x3", "color", "income", "city", "noise"]
GAPS = ("x1", "income", "color")  # columns with about 5% empty cells


def make_row(i: int, rng: random.Random) -> list:
    a, b, c = (rng.gauss(0.0, 1.0) for _ in range(3))
    income = 3000.0 + 800.0 * (a - b) + rng.gauss(0.0, 300.0)  # large scale on purpose
    color = rng.choice(list(COLORS))
    city = rng.randrange(len(CITIES))
    price = 250.0 + 40.0 * a - 25.0 * b + 15.0 * c * c + COLORS[color] + 3.0 * (city - 12) + rng.gauss(0.0, 8.0)
    row = {"id": f"r{i:05d}", "price": round(price, 2), "x1": round(a, 4), "x2": round(b, 4), "x3": round(c, 4)}
    row |= {"color": color, "income": round(income, 2), "city": CITIES[city], "noise": round(rng.gauss(0.0, 1.0), 4)}
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
            writer.writerows(make_row(i, rng) for i in range(start, start + count))
        start += count
    return root


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "data/sample"
    print(f"wrote a sample table to {write_sample(target)}")
