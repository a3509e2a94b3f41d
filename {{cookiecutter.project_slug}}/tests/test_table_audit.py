"""Table preprocessing at its edges: the embedding threshold's boundary, the median of an even count.

Each test pins a documented rule where a one-off slip would still pass the tests of tests/test_data.py.
"""

import csv

import pytest
import torch

from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.data import build_datasets, table
from {{ cookiecutter.package_name }}.data.preprocessing import embedding_dim

# The column build_datasets reads the targets from: configs/default.yaml's data.label_column (a name, or a list of
# names). The tables below fill it with 0 and 1, a valid target for every task (as text, or as numbers).
LABEL_COLUMN = load_config().data.label_column
TARGET = LABEL_COLUMN if isinstance(LABEL_COLUMN, str) else LABEL_COLUMN[0]


def write_table(path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([header, *rows])


def test_exactly_threshold_levels_are_one_hot_and_one_more_is_embedded(tmp_path, make_config):
    root = tmp_path / "levels"
    # `three` has 3 levels (= the threshold), `four` has 4 (one more); `x` keeps a numeric column in front.
    rows = [[f"t{i % 3}", f"f{i % 4}", i, i % 2] for i in range(12)]
    write_table(root / "train.csv", ["three", "four", "x", TARGET], rows)
    write_table(root / "val.csv", ["three", "four", "x", TARGET], rows[:4])
    cfg = make_config(**{"data.root": root, "data.embedding_threshold": 3})
    train_set, _, info = build_datasets(cfg)
    roles = {column["name"]: column["embedding_dim"] for column in info["categorical"]}
    assert roles == {"three": 0, "four": embedding_dim(5)}  # the embedding has a row for unknown levels
    assert info["embeddings"] == [[5, embedding_dim(5)]]
    assert info["num_features"] == 1 + 3 + 1  # x, three one-hot columns, one column of codes
    assert train_set.features[:3, 1:4].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert train_set.features[:5, 4].tolist() == [0, 1, 2, 3, 0]


def test_gaps_take_the_lower_middle_of_an_even_count_of_train_values(tmp_path, make_config):
    root = tmp_path / "even"
    train = [["4", 0], ["", 1], ["1", 0], ["9", 1], ["2", 0]]  # present: 1 2 4 9 (mean 4)
    write_table(root / "train.csv", ["x", TARGET], train)
    write_table(root / "val.csv", ["x", TARGET], [["", 0], ["100", 1], ["200", 0]])  # val's median: 150
    train_set, val_set, info = build_datasets(make_config(**{"data.root": root}))
    (x,) = info["numeric"]
    present = torch.tensor([4.0, 1.0, 9.0, 2.0], dtype=torch.float64)
    assert x["median"] == present.median().item() == 2.0  # torch.median: the lower of the two middle values
    filled = torch.tensor([4.0, 2.0, 1.0, 9.0, 2.0], dtype=torch.float64)
    assert (x["mean"], x["std"]) == pytest.approx((filled.mean().item(), filled.std(unbiased=False).item()))
    gap = (2.0 - filled.mean().item()) / filled.std(unbiased=False).item()
    assert train_set.features[1].tolist() == pytest.approx([gap, 1.0])
    assert val_set.features[0].tolist() == pytest.approx([gap, 1.0])  # train's median, flagged


TRICKY = [  # x: numbers, then a word in a later chunk; g: gaps only at first; n: whole numbers, a fraction late
    ["x", "g", "n", "c", "label"],
    ["1.5", "", "3", " b ", "b"],
    ["2", "", "4", "a", "a"],
    ["-", "", "5", "", "b"],
    ["7", "yes", "6", "b", "c"],
    ["8", "", "7.5", "c", "a"],
]


def read_with_chunks(path, monkeypatch, rows: int):
    monkeypatch.setattr(table, "CHUNK_ROWS", rows)
    return table.read_table(path, "label", configured={}, na_values=["NA"])


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_a_table_read_in_chunks_equals_it_read_at_once(tmp_path, monkeypatch, rows):
    path = tmp_path / "train.csv"
    write_table(path, TRICKY[0], TRICKY[1:])
    whole, chunked = (read_with_chunks(path, monkeypatch, n) for n in (10**6, rows))
    # "-" is not a gap here, so x is categorical; g holds one word among gaps; n is numbers throughout.
    assert whole.numeric_names == chunked.numeric_names == ["n"]
    assert torch.equal(chunked.column("n"), torch.tensor([3, 4, 5, 6, 7.5], dtype=torch.float64))
    assert whole.categorical.keys() == chunked.categorical.keys() == {"x", "g", "c"}
    for name in ("x", "g", "c"):
        (codes, levels), (expected_codes, expected_levels) = chunked.categorical[name], whole.categorical[name]
        assert levels == expected_levels and torch.equal(codes, expected_codes), name
    assert whole.categorical["c"][1] == ["b", "a", "c", ""]  # stripped, in order of appearance; "" is a gap
    assert chunked.labels.tolist() == ["b", "a", "b", "c", "a"]
