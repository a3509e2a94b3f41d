"""Write a small, learnable table the way tables come: listings and their tags in CSV.

    python -m {{ cookiecutter.package_name }}.data.sample data/sample

Like an export from a database: an `id` column (dropped by data.drop_columns), the `tags` second (any
number per row, separated by ";", an empty cell for none), a categorical `color` (one-hot), a `city`
with many levels (a learned embedding), about 5% empty cells, features on very different scales
(`income` is in the thousands) and one that is pure noise. Each tag follows from the features by its
own rule, and 3% of the tag decisions are flipped at random, so a model can learn most but not all of
them. The tags are imbalanced: `sale` is on about 4 rows in 10, `premium` on about 1 in 8.
"""

import csv
import random
import sys
from pathlib import Path

CITIES = [f"city_{i:02d}" for i in range(24)]  # more levels than data.embedding_threshold
COLUMNS = ["id", "tags", "x1", "x2", "x3", "color", "income", "city", "noise"]
GAPS = ("x1", "income", "color")  # columns with about 5% empty cells
SEPARATOR = ";"
FLIP = 0.03  # the share of tag decisions flipped: the noise no model can learn
# Each tag's rule, from the row's features (a gap in a feature does not change the tag).
RULES = {
    "sale": lambda r: r["x1"] > 0.3,
    "fragile": lambda r: r["x2"] + r["x3"] > 1.0,
    "red_label": lambda r: r["color"] == "red",
    "premium": lambda r: r["income"] > 4300.0,
    "local": lambda r: r["city"] < 5,
}
TAGS = list(RULES)


def make_row(i: int, rng: random.Random) -> list:
    a, b, c = (rng.gauss(0.0, 1.0) for _ in range(3))
    income = 3000.0 + 800.0 * (a - b) + rng.gauss(0.0, 300.0)  # large scale on purpose
    facts = {"x1": a, "x2": b, "x3": c, "color": rng.choice(["red", "green", "blue"]), "income": income}
    facts["city"] = rng.randrange(len(CITIES))
    tags = [tag for tag, rule in RULES.items() if rule(facts) != (rng.random() < FLIP)]
    row = {"id": f"r{i:05d}", "tags": SEPARATOR.join(tags), "x1": round(a, 4), "x2": round(b, 4), "x3": round(c, 4)}
    row |= {"color": facts["color"], "income": round(income, 2), "city": CITIES[facts["city"]]}
    row["noise"] = round(rng.gauss(0.0, 1.0), 4)
    for column in GAPS:
        if rng.random() < 0.05:
            row[column] = ""
    return [row[column] for column in COLUMNS]


def write_sample(root, train_rows: int = 800, val_rows: int = 200, seed: int = 0) -> Path:
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
