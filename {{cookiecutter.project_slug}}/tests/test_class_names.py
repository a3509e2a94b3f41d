"""Classes named by numbers: one order, the checkpoint's, from training to every output.

Labels 2, 7, 10 and 100 sort as numbers; as text they would be 10, 100, 2, 7. A script that sorted the
names itself would mislabel every prediction while the tests' own class names (already in text order)
would not notice. The trained head is replaced by fixed logits, so every output has a known answer.
"""

import csv
import json
from collections import Counter

import pytest
import torch
from conftest import fast_overrides
from tiny_data import write_renamed_sample

import evaluate
import predict
import train
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.data import build_dataloaders
from {{ cookiecutter.package_name }}.models import build_model

VAL_COUNTS = {"10": 3, "2": 1, "100": 4, "7": 2}  # in the sample's class order; a different count each
ORDER = ["2", "7", "10", "100"]  # numbers sort as numbers
LOGITS = [1.0, 0.0, 3.0, 2.0]  # the head's output for every input, in ORDER: always class "10"
EXPECTED = dict(zip(ORDER, torch.tensor(LOGITS).softmax(dim=0).tolist(), strict=True))


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    """(best.pt of a run on classes 2, 7, 10, 100 whose head always answers LOGITS, predict.py inputs)."""
    tmp = tmp_path_factory.mktemp("numbered")
    root, inputs = write_renamed_sample(tmp / "data", VAL_COUNTS)
    assert train.main(fast_overrides(tmp, root, run_name="numbers")) == 0
    path = tmp / "runs" / "numbers" / "checkpoints" / "best.pt"
    state = load_checkpoint(path)
    model = build_model(load_config(base=state["config"]), state["data_info"])
    load_model_weights(model, state, path)
    head = [module for module in model.modules() if isinstance(module, torch.nn.Linear)][-1]
    assert head.out_features == len(ORDER)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor(LOGITS))
    for key in ("model", "model_ema"):
        if key in state:
            state[key] = model.state_dict()
    save_checkpoint(state, path)
    return path, inputs


def check_predictions(path) -> list[dict]:
    """Every row of a predictions CSV names class "10" and gives EXPECTED's probability under each class's name."""
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert reader.fieldnames[-len(ORDER) :] == [f"p_{name}" for name in ORDER]
    assert len(rows) == sum(VAL_COUNTS.values())
    for row in rows:
        assert row["prediction"] == "10"
        assert {name: float(row[f"p_{name}"]) for name in ORDER} == pytest.approx(EXPECTED, abs=1e-5)
    return rows


def test_training_orders_numeric_class_names_as_numbers(numbered):
    state = load_checkpoint(numbered[0])
    assert [str(name) for name in state["data_info"]["classes"]] == ORDER
    _, val_loader, data_info = build_dataloaders(load_config(base=state["config"]))
    labels = torch.cat([targets for _, targets in val_loader])
    assert data_info["classes"] == ORDER
    assert torch.bincount(labels, minlength=len(ORDER)).tolist() == [VAL_COUNTS[name] for name in ORDER]


def test_predict_names_each_class_as_the_checkpoint_does(numbered, tmp_path):
    path, inputs = numbered
    output = tmp_path / "predictions.csv"
    assert predict.main([str(path), *inputs, "--output", str(output)]) == 0
    check_predictions(output)


def test_evaluate_outputs_use_the_checkpoints_class_order(numbered, capsys):
    path = numbered[0]
    assert evaluate.main([str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    eval_dir = path.parent.parent / "eval" / "val"
    report = json.loads((eval_dir / "report.json").read_text(encoding="utf-8"))
    assert printed["per_class"] == report["per_class"]
    assert {name: scores["support"] for name, scores in report["per_class"].items()} == VAL_COUNTS
    assert {name: scores["recall"] for name, scores in report["per_class"].items()} == {
        name: float(name == "10") for name in ORDER
    }
    column = ORDER.index("10")
    assert report["confusion_matrix"] == [[VAL_COUNTS[n] * (j == column) for j in range(4)] for n in ORDER]
    rows = check_predictions(eval_dir / "predictions.csv")
    assert Counter(row["target"] for row in rows) == VAL_COUNTS


def test_an_export_embeds_the_checkpoints_class_order(numbered, tmp_path):
    pytest.importorskip("onnx", reason='needs onnx: pip install -e ".[export]"')
    pytest.importorskip("onnxruntime", reason='needs onnxruntime: pip install -e ".[export]"')
    import export

    path, inputs = numbered
    onnx_file = tmp_path / "numbers.onnx"
    assert export.main([str(path), "--format", "onnx", "--output", str(onnx_file)]) == 0
    metadata = json.loads(onnx_file.with_name(onnx_file.name + ".json").read_text(encoding="utf-8"))
    assert metadata["classes"] == ORDER
    output = tmp_path / "predictions.csv"
    assert predict.main([str(onnx_file), *inputs, "--output", str(output)]) == 0
    check_predictions(output)
