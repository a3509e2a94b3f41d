"""export.py: exported files compute what the checkpoint computes, carry their preprocessing, and predict as
the checkpoint does (predict.py, and deploy/onnx_predict.py with neither torch nor this project); refusals."""

import csv
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import PACKAGE, PROJECT_DIR
from test_data import val_inputs

import export
import predict
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint, load_model_weights
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.data import build_datasets
from {{ cookiecutter.package_name }}.deploy import FORMATS, METADATA_KEY, OUTPUT_MEANING, OUTPUT_NAME, load_exported
from {{ cookiecutter.package_name }}.errors import CheckpointError, ConfigError, run_main
from {{ cookiecutter.package_name }}.models import build_model

onnx = pytest.importorskip("onnx", reason='needs onnx: pip install -e ".[export]"')
onnxruntime = pytest.importorskip("onnxruntime", reason='needs onnxruntime: pip install -e ".[export]"')


@pytest.fixture
def run_dir(trained_run) -> Path:
    return trained_run  # conftest.py: one tiny trained run per session (this module adds its export/)


@pytest.fixture
def onnx_file(run_dir) -> Path:
    """The run's last.pt exported with the defaults: <run_dir>/export/last.onnx."""
    path = run_dir / "export" / "last.onnx"
    if not path.exists():
        assert export.main([str(run_dir)]) == 0
    return path


def model_and_val_batch(run_dir: Path):
    """(the checkpoint's model in eval mode, its data_info, every val input as one batch)."""
    state = load_checkpoint(run_dir)
    cfg = load_config(base=state["config"])
    val_set = build_datasets(cfg, state["data_info"])[1]
    inputs = next(iter(torch.utils.data.DataLoader(val_set, batch_size=len(val_set), collate_fn=val_set.collate_fn)))
    model = build_model(cfg, state["data_info"])
    load_model_weights(model, state)
    return model.eval(), state["data_info"], inputs[0]


def predictions(model_path: Path, inputs: list[str], output: Path) -> dict:
    """predict.py's CSV for `inputs`: {input: row}."""
    assert predict.main([str(model_path), *inputs, "--output", str(output)]) == 0
    return read_csv(output)


def standalone_predictions(onnx_file: Path, inputs: list[str], folder: Path) -> dict:
    """deploy/onnx_predict.py's CSV for `inputs`, run from a copy in `folder` by a Python where neither torch nor
    this project can be imported: {input: row}."""
    folder.mkdir()
    script = shutil.copy(PROJECT_DIR / "deploy" / "onnx_predict.py", folder)
    model = shutil.copy(onnx_file, folder / "model.onnx")
    blocked = f"import runpy, sys; sys.modules['torch'] = sys.modules[{PACKAGE!r}] = None; sys.argv = sys.argv[1:]; "
    command = [sys.executable, "-c", blocked + "runpy.run_path(sys.argv[0], run_name='__main__')", script, model]
    proc = subprocess.run([*command, *inputs, "--output", "standalone.csv"], cwd=folder, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return read_csv(folder / "standalone.csv")


def read_csv(path: Path) -> dict:
    with open(path, newline="", encoding="utf-8") as file:
        return {row["input"]: row for row in csv.DictReader(file)}


def assert_same_predictions(got: dict, expected: dict, tolerance: float = 1e-4) -> None:
    """The same inputs in the same order, the same columns, and in every cell the same text or a number within
    `tolerance`, absolute (for numbers near 0) or relative (for large ones)."""
    assert list(got) == list(expected)
    for name, row in expected.items():
        assert list(got[name]) == list(row), name
        for column, want in row.items():
            assert same_cell(got[name][column], want, tolerance), (name, column, got[name][column], want)


def same_cell(got: str, want: str, tolerance: float) -> bool:
    try:
        return float(got) == pytest.approx(float(want), rel=tolerance, abs=tolerance)
    except ValueError:  # a name: the input's, an id's, a predicted label's
        return got == want


def test_onnx_carries_its_preprocessing_and_runs_any_batch_size(onnx_file, run_dir):
    model, data_info, inputs = model_and_val_batch(run_dir)
    sidecar = json.loads(onnx_file.with_name("last.onnx.json").read_text())
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    embedded = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert embedded == {key: value for key, value in sidecar.items() if key not in ("file", "parity")}
    assert embedded["data_info"] == json.loads(json.dumps(data_info))  # the inputs' statistics, the outputs' meaning
    assert embedded["classes"] == [str(c) for c in data_info["classes"]]  # classification
    assert embedded["labels"] == data_info["labels"] and embedded["thresholds"] == data_info["thresholds"]  # multilabel
    assert embedded["input"]["shape"] == ["batch", *inputs.shape[1:]]
    output = {"name": OUTPUT_NAME, "shape": ["batch", data_info["num_outputs"]], "meaning": OUTPUT_MEANING}
    assert embedded["output"] == output
    assert [o.name for o in session.get_outputs()] == [OUTPUT_NAME]
    assert session.get_inputs()[0].shape[0] == "batch"  # a free batch axis
    parity = sidecar["parity"]
    assert parity["samples"] == len(inputs) and parity["outside_tolerance"] == 0
    assert parity["argmax_agreement"] == 1.0  # classification
    assert parity["atol"] == parity["rtol"] == 1e-4
    assert 0 <= parity["max_abs_diff"] <= 1e-4 + 1e-4 * parity["max_abs_output"]
    with torch.no_grad():
        expected = model(inputs)
    assert parity["max_abs_output"] == pytest.approx(expected.abs().max().item(), rel=1e-6)
    for size in (1, len(inputs) - 1, len(inputs)):
        outputs = session.run([OUTPUT_NAME], {"input": inputs[:size].numpy()})[0]
        torch.testing.assert_close(torch.from_numpy(outputs), expected[:size], atol=1e-4, rtol=1e-4)


def test_predict_with_onnx_matches_the_checkpoint(onnx_file, run_dir, data_root, tmp_path):
    val_set = build_datasets(load_config(base=load_checkpoint(run_dir)["config"]), None)[1]
    inputs, names = val_inputs(data_root, val_set, tmp_path)
    expected = predictions(run_dir / "checkpoints" / "last.pt", inputs, tmp_path / "checkpoint.csv")  # as exported
    assert list(expected) == names
    assert_same_predictions(predictions(onnx_file, inputs, tmp_path / "onnx.csv"), expected)
    # deploy/onnx_predict.py alone takes image files and folders, or CSV files: a list file's images one by one.
    inputs = names if all(Path(name).is_file() for name in names) else inputs
    assert_same_predictions(standalone_predictions(onnx_file, inputs, tmp_path / "deploy"), expected)


def test_every_format_predicts_as_the_checkpoint(onnx_file, run_dir, data_root, tmp_path, capsys):
    """The default model in every format (tests/ of the template export every model of models/ in every format)."""
    val_set = build_datasets(load_config(base=load_checkpoint(run_dir)["config"]), None)[1]
    inputs, _ = val_inputs(data_root, val_set, tmp_path)
    expected = predictions(run_dir / "checkpoints" / "last.pt", inputs, tmp_path / "checkpoint.csv")  # as exported
    for name, fmt in FORMATS.items():
        output = onnx_file if name == "onnx" else tmp_path / f"model{fmt.suffix}"
        if name != "onnx":  # the fixture exported the .onnx file already
            capsys.readouterr()
            assert export.main([str(run_dir), "--format", name, "--output", str(output)]) == 0
            assert capsys.readouterr().out.strip() == str(output)  # the path, for scripts
        sidecar = json.loads(Path(f"{output}.json").read_text())
        assert sidecar["format"] == name and sidecar["file"] == output.name
        assert sidecar["parity"]["outside_tolerance"] == 0, name
        assert sidecar["parity"]["argmax_agreement"] == 1.0, name  # classification
        assert_same_predictions(predictions(output, inputs, tmp_path / f"{name}.csv"), expected)


def test_a_parity_failure_writes_nothing(run_dir, tmp_path, monkeypatch, capsys):
    exported = FORMATS["exported"]

    def off_by_a_little(path):
        run, metadata = exported.load(path)
        return (lambda inputs: run(inputs) + 0.5), metadata

    monkeypatch.setitem(FORMATS, "exported", dataclasses.replace(exported, load=off_by_a_little))
    output = tmp_path / "model.pt2"
    assert run_main(export.main, [str(run_dir), "--format", "exported", "--output", str(output)]) == 2
    message = capsys.readouterr().err
    assert "differ by more than --atol 0.0001 + --rtol 0.0001 x |output| (max |difference| 0.5" in message
    assert "nothing was written" in message
    assert not output.exists() and not Path(f"{output}.json").exists()
    # With a tolerance that admits the difference, the same export is written.
    assert export.main([str(run_dir), "--format", "exported", "--output", str(output), "--atol", "0.6"]) == 0
    assert output.exists()


@torch.library.custom_op(f"{PACKAGE}_tests::doubled", mutates_args=())
def doubled(x: torch.Tensor) -> torch.Tensor:
    """An operator that torch.export can trace (it has a fake kernel) but ONNX has no translation for."""
    return x * 2


@doubled.register_fake
def _(x):
    return torch.empty_like(x)


def test_a_model_that_cannot_export_names_the_operator(run_dir, tmp_path, monkeypatch, capsys):
    def build(cfg, info):  # the model with the operator on its output: the checkpoint's weights load as they are
        model = build_model(cfg, info)
        model.register_forward_hook(lambda module, args, output: doubled(output))
        return model

    monkeypatch.setattr(export, "build_model", build)
    output = tmp_path / "model.onnx"
    assert run_main(export.main, [str(run_dir), "--output", str(output)]) == 2
    message = capsys.readouterr().err
    assert f"does not export; it failed at operator {PACKAGE}_tests.doubled" in message
    assert "Try --format exported" in message
    assert not output.exists()


def test_without_onnxruntime_the_export_stands_unchecked(onnx_file, run_dir, data_root, tmp_path, monkeypatch, capsys):
    def copy_of_the_run_s_export(model, example, path, metadata):  # a real .onnx file, without exporting anew
        shutil.copy(onnx_file, path)

    monkeypatch.setitem(FORMATS, "onnx", dataclasses.replace(FORMATS["onnx"], export=copy_of_the_run_s_export))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    output = tmp_path / "model.onnx"
    assert export.main([str(run_dir), "--output", str(output)]) == 0
    assert json.loads(Path(f"{output}.json").read_text())["parity"] is None
    assert "parity not checked: running model.onnx needs onnxruntime" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"needs onnxruntime, not installed here: pip install -e '.\[export\]'"):
        predict.main([str(output), str(data_root), "--output", str(tmp_path / "p.csv")])


def test_bad_exports_and_exported_files_are_refused(onnx_file, run_dir, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="exists; pass --overwrite"):
        export.main([str(run_dir)])  # the fixture's export is there already
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "onnxscript", None)  # what torch.onnx writes ONNX with
        with pytest.raises(ConfigError, match=r"--format onnx needs the onnxscript package, not installed here"):
            export.main([str(run_dir), "--output", str(tmp_path / "model.onnx")])
    assert not (tmp_path / "model.onnx").exists()
    with pytest.raises(ConfigError, match=r"a --format exported file name ends in \.pt2"):
        export.main([str(run_dir), "--format", "exported", "--output", str(tmp_path / "model.onnx")])
    with pytest.raises(SystemExit):  # argparse: invalid choice
        export.main([str(run_dir), "--format", "tflite"])
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(onnx_file.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="is not a readable ONNX model"):
        load_exported(truncated)
    foreign = tmp_path / "foreign.onnx"  # an ONNX model from elsewhere: no preprocessing to apply
    node = onnx.helper.make_node("Identity", ["input"], [OUTPUT_NAME])
    value = onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([node], "g", [value], [onnx.helper.make_tensor_value_info(OUTPUT_NAME, 1, [1])])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), foreign)
    with pytest.raises(CheckpointError, match="was not exported by this project's export.py"):
        load_exported(foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_exported(tmp_path / "missing.onnx")
