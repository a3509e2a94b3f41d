"""Evaluation reports: every number against scikit-learn, the files, the test split, evaluate.py."""

import csv
import importlib.util
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import PACKAGE, fast_overrides
from PIL import Image
from tiny_data import write_tiny_sample, write_tiny_test_split
from torch.utils.data import DataLoader, TensorDataset

import evaluate
import train
from {{ cookiecutter.package_name }} import engine
from {{ cookiecutter.package_name }}.confusion import confusion_image
from {{ cookiecutter.package_name }}.errors import run_main
from {{ cookiecutter.package_name }}.task import build_report, expected_calibration_error

IMAGES = importlib.util.find_spec(f"{PACKAGE}.data.images") is not None  # image data: mistakes.png too
NEEDS_SKLEARN = 'needs scikit-learn: pip install -e ".[dev]"'  # the independent reference
FILES = ["report.json", "confusion_matrix.csv", "confusion_matrix.png", "predictions.csv"] + ["mistakes.png"] * IMAGES


def outputs_of(probs: torch.Tensor, target: torch.Tensor) -> dict:
    n = len(target)
    return {"index": torch.arange(n), "target": target, "output": probs, "loss_sum": 1.5 * n, "weight_sum": n}


@pytest.mark.parametrize("num_classes", [3, 7])
def test_every_number_equals_scikit_learn(num_classes):
    metrics = pytest.importorskip("sklearn.metrics", reason=NEEDS_SKLEARN)
    generator = torch.Generator().manual_seed(num_classes)
    probs = torch.rand(200, num_classes, generator=generator).softmax(dim=1)
    target = torch.randint(0, num_classes, (200,), generator=generator)
    target[target == 1] = 0  # class 1 has no samples: zeros, not a crash or a NaN
    classes = [f"c{i}" for i in range(num_classes)]
    report = build_report(outputs_of(probs, target), {"classes": classes})

    y_true, y_pred, labels = target.numpy(), probs.argmax(dim=1).numpy(), list(range(num_classes))
    expected = metrics.classification_report(
        y_true, y_pred, labels=labels, target_names=classes, output_dict=True, zero_division=0
    )
    assert report["num_samples"] == 200 and report["loss"] == pytest.approx(1.5)
    assert report["accuracy"] == pytest.approx(expected["accuracy"])
    assert report["macro_f1"] == pytest.approx(expected["macro avg"]["f1-score"])
    assert report["weighted_f1"] == pytest.approx(expected["weighted avg"]["f1-score"])
    for name in classes:
        for key in ("precision", "recall", "f1", "support"):
            theirs = expected[name]["f1-score" if key == "f1" else key]
            assert report["per_class"][name][key] == pytest.approx(theirs), (name, key)
    assert report["per_class"]["c1"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["confusion_matrix"] == metrics.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    if num_classes > 5:
        top5 = metrics.top_k_accuracy_score(y_true, probs.numpy(), k=5, labels=labels)
        assert report["top5_accuracy"] == pytest.approx(top5)
    else:
        assert "top5_accuracy" not in report
    json.dumps(report)  # plain types only


def test_confusion_png_shades_each_cell_by_its_share_of_the_row():
    confusion = torch.tensor([[5, 0, 0], [2, 2, 0], [1, 1, 6]])  # rows and columns normalise differently
    image = confusion_image(confusion, ["a", "b", "c"]).convert("RGB")
    pixels = Counter(zip(*(band.tobytes() for band in image.split()), strict=True))  # (r, g, b) -> pixel count

    def blue(rate):  # white (247, 251, 255) to dark blue (8, 48, 107), as matplotlib's Blues
        return tuple(round(a + (b - a) * rate) for a, b in zip((247, 251, 255), (8, 48, 107), strict=True))

    cells = Counter(count / sum(row) for row in confusion.tolist() for count in row)  # exact binary fractions
    area = min(pixels[blue(rate)] for rate in cells) / max(cells.values())  # the least pixels of a cell's shade
    for rate, count in cells.items():  # 1: one cell, 0: three, 0.5: two, 0.125: two, 0.75: one
        assert pixels[blue(rate)] >= count * area * 0.9, rate
    assert pixels[blue(2 / 8)] < area / 2 and pixels[blue(6 / 7)] < area / 2  # column shares: not drawn


def test_val_macro_f1_is_the_unweighted_mean_of_the_class_f1s(make_config):
    metrics = pytest.importorskip("sklearn.metrics", reason=NEEDS_SKLEARN)
    generator = torch.Generator().manual_seed(3)
    targets = torch.tensor([0] * 20 + [1] * 6 + [2] * 2)  # imbalanced: macro and weighted F1 differ
    inputs = torch.randn(len(targets), 4, generator=generator) + targets.view(-1, 1) * 0.7
    model = torch.nn.Linear(4, 3)
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=5)
    criterion = torch.nn.CrossEntropyLoss()
    result = engine.evaluate(model, criterion, loader, torch.device("cpu"), make_config(), {"classes": "abc"})
    with torch.no_grad():
        predictions = model(inputs).argmax(1)
    expected = metrics.f1_score(targets, predictions, average="macro", labels=[0, 1, 2], zero_division=0)
    assert result["macro_f1"] == pytest.approx(expected)
    assert expected != pytest.approx(metrics.f1_score(targets, predictions, average="weighted", zero_division=0))


def test_calibration_error_by_hand():
    # Bins of width 1/15: 0.95 and 1.0 share the last bin, 0.5 has its own: 2/3 * |0.5 - 0.975| + 1/3 * |1 - 0.5|.
    confidence, correct = torch.tensor([0.95, 1.0, 0.5]), torch.tensor([True, False, True])
    assert expected_calibration_error(confidence, correct) == pytest.approx(2 / 3 * 0.475 + 1 / 3 * 0.5)
    assert expected_calibration_error(torch.ones(4), torch.ones(4, dtype=torch.bool)) == 0.0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A one-epoch run on data with a test split; train.py evaluates best.pt on val and test at its end."""
    tmp = tmp_path_factory.mktemp("report")
    data_root = write_tiny_test_split(write_tiny_sample(tmp / "data"))
    assert train.main(fast_overrides(tmp, data_root, run_name="r")) == 0
    return tmp / "runs" / "r"


@pytest.mark.parametrize("split", ["val", "test"])
def test_training_ends_with_reports_of_best_on_val_and_test(run, split):
    folder = run / "eval" / split
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    classes = list(report["per_class"])
    with open(folder / "predictions.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == report["num_samples"] == sum(map(sum, report["confusion_matrix"]))
    ids = list(rows[0])[2 : list(rows[0]).index("target")]  # the columns that name each sample, if any
    probabilities = [f"p_{c}" for c in classes]
    assert list(rows[0]) == ["index", "source", *ids, "target", "prediction", "confidence", *probabilities]
    for row in rows:
        assert row["target"] in classes and row["prediction"] in classes and row["source"]
        probs = [float(row[f"p_{c}"]) for c in classes]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4) and float(row["confidence"]) == pytest.approx(max(probs))
    hits = sum(row["target"] == row["prediction"] for row in rows)
    assert hits / len(rows) == pytest.approx(report["accuracy"])
    with open(folder / "confusion_matrix.csv", newline="", encoding="utf-8") as file:
        table = list(csv.reader(file))
    assert table[0][1:] == classes and [list(map(int, r[1:])) for r in table[1:]] == report["confusion_matrix"]
    for picture in (name for name in FILES if name.endswith(".png")):
        with Image.open(folder / picture) as image:
            image.verify()
            assert image.format == "PNG"
    assert f"best.pt on {split}: accuracy" in (run / "train.log").read_text(encoding="utf-8")


def test_evaluate_prints_the_report_the_end_of_training_wrote(run, capsys):
    saved = json.loads((run / "eval" / "test" / "report.json").read_text(encoding="utf-8"))
    capsys.readouterr()
    assert evaluate.main([str(run / "checkpoints" / "best.pt"), "--split", "test"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["split"] == "test" and result["epoch"] == 1
    assert {key: result[key] for key in saved} == saved  # the same weights, data and batches: the same numbers
    assert "precision" in err and "macro F1" in err  # the readable table on stderr


def check_optional_test_split(tmp_path, cli_overrides, data_root, capsys):
    """Run by the test_data.py of data types whose test split is optional: adding one changes no
    training (same weights and metrics), and evaluate.py --split test without one is a clean error."""
    with_test = write_tiny_test_split(Path(shutil.copytree(data_root, tmp_path / "with_test")))
    assert train.main(cli_overrides(run_name="with", **{"data.root": with_test})) == 0
    assert train.main(cli_overrides(run_name="without")) == 0
    runs = tmp_path / "runs"
    a, b = (torch.load(runs / name / "checkpoints" / "last.pt", weights_only=True) for name in ("with", "without"))
    assert all(torch.equal(a["model"][key], b["model"][key]) for key in a["model"])
    assert [row | {"time_s": 0} for row in a["history"]] == [row | {"time_s": 0} for row in b["history"]]
    assert (runs / "with" / "eval" / "test" / "report.json").is_file()
    assert not (runs / "without" / "eval" / "test").exists()
    capsys.readouterr()
    assert run_main(evaluate.main, [str(runs / "without"), "--split", "test"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: --split test:") and "no test split" in line, line


def check_unknown_test_class_stops_training_before_it_starts(tmp_path, cli_overrides, data_root, capsys, add_class):
    """`add_class(root)` puts a sample of a class train lacks into the test split; its name is in the error."""
    root = Path(shutil.copytree(data_root, tmp_path / "data"))
    name = add_class(write_tiny_test_split(root))
    capsys.readouterr()
    assert run_main(train.main, cli_overrides(**{"data.root": root})) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: ") and name in line and "test" in line, line
    assert not (tmp_path / "runs").exists()  # checked before anything was written
