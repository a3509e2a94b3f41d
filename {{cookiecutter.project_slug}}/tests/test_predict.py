"""predict.py: the CSV contract, agreement with the training data pipeline, every input kind, refusals and errors."""

import csv
{% if cookiecutter.dataset_type != "tabular_csv" %}
import os
import re
import shutil
{% endif %}
from pathlib import Path

import pytest
import torch

import predict
import train
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint, load_model_weights
from {{ cookiecutter.package_name }}.config import ConfigError, load_config
from {{ cookiecutter.package_name }}.data import DataError, build_dataloaders
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.trainer import evaluate


@pytest.fixture(scope="module")
def shared_runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture
def run_dir(shared_runs, cli_overrides) -> Path:
    """One tiny trained run, shared by this module's tests (they read it, never change it)."""
    run_dir = shared_runs / "run"
    if not run_dir.exists():
        assert train.main(cli_overrides(run_name="run", output_dir=shared_runs)) == 0
    return run_dir


def read_predictions(path: Path, classes: list[str]) -> list[dict]:
    """The rows of a predictions CSV, after checking what every row must satisfy."""
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames == ["input", "prediction", "probability", *(f"p_{c}" for c in classes)]
        rows = list(reader)
    for row in rows:
        probabilities = [float(row[f"p_{c}"]) for c in classes]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
        assert row["prediction"] in classes
        best = max(range(len(classes)), key=probabilities.__getitem__)
        assert row["prediction"] == classes[best]  # the argmax
        assert float(row["probability"]) == probabilities[best]
    return rows


def probabilities_of(row: dict, classes: list[str]) -> torch.Tensor:
    return torch.tensor([float(row[f"p_{c}"]) for c in classes])


def through_the_pipeline(run_dir: Path):
    """(val dataset, softmax probabilities, labels, evaluate()'s accuracy) from the training data pipeline."""
    state = load_checkpoint(run_dir)
    cfg = load_config(base=state["config"])
    _, val_loader, data_info = build_dataloaders(cfg, state["data_info"])
    model = build_model(cfg, data_info)
    load_model_weights(model, state)
    model.eval()
    with torch.inference_mode():
        logits, labels = zip(*((model(inputs), targets) for inputs, targets in val_loader), strict=True)
    accuracy = evaluate(model, val_loader, torch.device("cpu"))["accuracy"]
    return val_loader.dataset, torch.cat(logits).softmax(dim=1), torch.cat(labels), accuracy


{% if cookiecutter.dataset_type == "tabular_csv" %}
def val_inputs(data_root: Path, val_set, tmp_path: Path) -> tuple[list[str], list[str]]:
    """(predict.py inputs, the `input` name predict.py gives each val sample, in val order)."""
    val_csv = data_root / "val.csv"
    return [str(val_csv)], [f"{val_csv}:{row}" for row in range(1, len(val_set) + 1)]
{% elif cookiecutter.dataset_type == "torchvision" %}
def val_inputs(data_root: Path, val_set, tmp_path: Path) -> tuple[list[str], list[str]]:
    """(predict.py inputs, the `input` name predict.py gives each val sample, in val order).

    The val images live inside the dataset's own files, so they are written out as PNGs (lossless) first.
    """
    folder = tmp_path / "val_png"
    folder.mkdir()
    names = []
    for i, (source, _) in enumerate(val_set.samples):
        path = folder / f"{i:04d}.png"
        val_set.load(source).save(path)
        names.append(str(path))
    return [str(folder)], names
{% elif cookiecutter.dataset_type == "image_list" %}
def val_inputs(data_root: Path, val_set, tmp_path: Path) -> tuple[list[str], list[str]]:
    """(predict.py inputs, the `input` name predict.py gives each val sample, in val order).

    val.txt itself is the input: its `path label` lines give their paths, relative to the list's folder.
    """
    return [str(data_root / "val.txt")], [str(Path(path)) for path, _ in val_set.samples]
{% else %}
def val_inputs(data_root: Path, val_set, tmp_path: Path) -> tuple[list[str], list[str]]:
    """(predict.py inputs, the `input` name predict.py gives each val sample, in val order)."""
    return [str(data_root / "val")], [str(Path(path)) for path, _ in val_set.samples]
{% endif %}


def test_predictions_match_the_training_pipeline(run_dir, data_root, tmp_path, capsys):
    classes = [str(c) for c in load_checkpoint(run_dir)["data_info"]["classes"]]
    val_set, expected, labels, accuracy = through_the_pipeline(run_dir)
    inputs, names = val_inputs(data_root, val_set, tmp_path)
    output = tmp_path / "out" / "predictions.csv"
    capsys.readouterr()
    # Batches of 3, not the pipeline's 8, and an override mixed in with the inputs.
    args = [str(run_dir), *inputs, "trainer.device=cpu", "--batch-size", "3", "--output", str(output)]
    assert predict.main(args) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout stays free; the one-line summary goes to stderr
    assert f"Predicted {len(names)} inputs" in captured.err and f"wrote {output}" in captured.err

    rows = read_predictions(output, classes)
    assert len(rows) == len(val_set)
    by_name = {row["input"]: row for row in rows}
    assert sorted(by_name) == sorted(names)  # one row per input, named as expected
    got = torch.stack([probabilities_of(by_name[name], classes) for name in names])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)  # the same numbers as training's pipeline
    predicted = torch.tensor([classes.index(by_name[name]["prediction"]) for name in names])
    assert (predicted == labels).float().mean().item() == pytest.approx(accuracy, abs=1e-9)  # = evaluate.py's
    assert sorted(p.name for p in output.parent.iterdir()) == ["predictions.csv"]  # no temp file left


{% if cookiecutter.dataset_type == "tabular_csv" %}
def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_columns_by_name_in_any_order_and_several_files(run_dir, data_root, tmp_path):
    """Reordered columns, an extra id column and no label column give the same predictions as val.csv."""
    classes = load_checkpoint(run_dir)["data_info"]["classes"]
    with open(data_root / "val.csv", newline="", encoding="utf-8") as file:
        records = list(csv.DictReader(file))
    columns = [c for c in records[0] if c != "label"]
    shuffled = ["id", *reversed(columns)]
    first_rows = [[i, *(r[c] for c in reversed(columns))] for i, r in enumerate(records[:5])]
    first = write_csv(tmp_path / "first.csv", shuffled, first_rows)
    second = write_csv(tmp_path / "second.csv", columns, [[r[c] for c in columns] for r in records[5:7]])
    assert predict.main([str(run_dir), str(data_root / "val.csv"), "--output", str(tmp_path / "reference.csv")]) == 0
    assert predict.main([str(run_dir), str(first), str(second), "--output", str(tmp_path / "mixed.csv")]) == 0

    reference = read_predictions(tmp_path / "reference.csv", classes)
    rows = read_predictions(tmp_path / "mixed.csv", classes)
    assert [row["input"] for row in rows] == [f"{first}:{i}" for i in range(1, 6)] + [f"{second}:1", f"{second}:2"]
    for row, same in zip(rows, reference[:7], strict=True):
        assert row["prediction"] == same["prediction"]
        torch.testing.assert_close(probabilities_of(row, classes), probabilities_of(same, classes), atol=1e-5, rtol=0)
{% else %}
def test_folder_list_and_file_inputs(run_dir, data_root, tmp_path):
    """A folder (recursive, sorted, non-images ignored), a .txt list and a file, in the order given."""
    classes = load_checkpoint(run_dir)["data_info"]["classes"]
    val_set = through_the_pipeline(run_dir)[0]
    _, names = val_inputs(data_root, val_set, tmp_path)
    originals = [Path(name) for name in names[:4]]
    inbox = tmp_path / "inbox"
    (inbox / "b" / "deeper").mkdir(parents=True)
    copies = [inbox / "b" / "deeper" / "z", inbox / "b" / "y", inbox / "a"]
    copies = [copy.with_suffix(original.suffix) for copy, original in zip(copies, originals[:3], strict=True)]
    for original, copy in zip(originals[:3], copies, strict=True):
        shutil.copyfile(original, copy)
    (inbox / "notes.md").write_text("not an image")
    spaced = tmp_path / "my scans" / f"scan 1{originals[3].suffix}"
    spaced.parent.mkdir()
    shutil.copyfile(originals[3], spaced)
    listing = tmp_path / "lists" / "todo.txt"
    listing.parent.mkdir()
    relative = os.path.relpath(spaced, listing.parent)  # relative to the list's folder
    # A bare path, a comment, a blank line, and image-list `path label` lines (the label is ignored).
    listing.write_text(f"# to classify\n{relative}\n\n{originals[0]} some_label\n{relative} 3\n")

    output = tmp_path / "predictions.csv"
    assert predict.main([str(run_dir), str(inbox), str(listing), str(originals[2]), "--output", str(output)]) == 0
    rows = read_predictions(output, classes)
    listed = listing.parent / relative
    expected = [*sorted(copies), listed, originals[0], listed, originals[2]]
    assert [row["input"] for row in rows] == [str(p) for p in expected]
    by_name = {row["input"]: probabilities_of(row, classes) for row in rows}
    for copy, original in [(copies[0], originals[0]), (copies[2], originals[2])]:
        torch.testing.assert_close(by_name[str(copy)], by_name[str(original)], atol=1e-5, rtol=0)  # same file
{% endif %}


def test_an_existing_output_is_refused_unless_overwrite(run_dir, data_root, tmp_path, monkeypatch):
    val_set = through_the_pipeline(run_dir)[0]
    inputs, names = val_inputs(data_root, val_set, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert predict.main([str(run_dir), *inputs]) == 0  # default: predictions.csv in the working directory
    output = tmp_path / "predictions.csv"
    with open(output, newline="", encoding="utf-8") as file:
        assert len(list(csv.DictReader(file))) == len(names)
    output.write_text("precious\n")
    with pytest.raises(ConfigError, match="already exists.*--overwrite"):
        predict.main([str(run_dir), *inputs])
    assert output.read_text() == "precious\n"
    assert predict.main([str(run_dir), *inputs, "--overwrite"]) == 0
    assert output.read_text().startswith("input,prediction,probability,")


{% if cookiecutter.dataset_type == "tabular_csv" %}
def test_bad_tables_are_clear_errors(run_dir, tmp_path):
    output = tmp_path / "out.csv"
    columns = ["x1", "x2", "x3", "income", "noise"]
    cases = [
        (["x1", "x2", "x3", "noise", "label"], [[0, 0, 0, 0, "alpha"]], r"no feature column 'income'; .*\['x1'"),
        (columns, [[0, 0, "oops", 0, 0]], r"line 2: column 'x3' = 'oops' is not a number"),
        (columns, [], "no rows found"),
    ]
    for header, rows, message in cases:
        bad = write_csv(tmp_path / "bad.csv", header, rows)
        with pytest.raises(DataError, match=message):
            predict.main([str(run_dir), str(bad), "--output", str(output)])
        assert not output.exists()
    with pytest.raises(DataError, match="does not exist"):
        predict.main([str(run_dir), str(tmp_path / "missing.csv"), "--output", str(output)])


def test_cli_errors_exit_2_with_one_line(run_dir, tmp_path, run_script):
    bad = write_csv(tmp_path / "bad.csv", ["x1", "x2", "x3", "label"], [[0, 0, 0, "alpha"]])
    proc = run_script("predict.py", run_dir, bad)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {bad} has no feature column 'income', 'noise'")
    assert not (tmp_path / "predictions.csv").exists()
{% else %}
def test_bad_inputs_are_clear_errors(run_dir, tmp_path):
    output = tmp_path / "out.csv"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    empty = tmp_path / "empty"
    empty.mkdir()
    notes = tmp_path / "notes.md"
    notes.write_text("hi")
    listing = tmp_path / "list.txt"
    listing.write_text("# header\nnowhere.png cat\n")
    cases = [
        ([broken], f"cannot read image {broken}"),
        ([tmp_path / "missing.png"], "does not exist"),
        ([empty], "no images"),
        ([notes], f"{notes} is not an image"),
        ([listing], f"{listing} line 2: no image file"),
        (["trainer.device=cpu"], "no images"),  # overrides are not inputs
    ]
    for inputs, message in cases:
        with pytest.raises(DataError, match=re.escape(message)):
            predict.main([str(run_dir), *map(str, inputs), "--output", str(output)])
        assert not output.exists()


def test_cli_errors_exit_2_with_one_line(run_dir, tmp_path, run_script):
    """An unreadable image met in a DataLoader worker process is one clean line too."""
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff truncated")
    proc = run_script("predict.py", run_dir, broken, "data.num_workers=1")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: cannot read image {broken}")
    assert not (tmp_path / "predictions.csv").exists()
{% endif %}
