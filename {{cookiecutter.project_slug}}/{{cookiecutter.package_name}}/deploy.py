"""Exported models (export.py writes them, predict.py runs them): ONNX, torch.export and TorchScript files.

Every exported file carries one JSON document under METADATA_KEY (ONNX metadata, or an extra file in
the archive): the input it takes, its output (OUTPUT_NAME) and what its numbers mean, and the checkpoint's
`data_info` (what its inputs are, the statistics they are normalised with, what its outputs stand for) and
config. With it, predict.py and a script outside the project (deploy/onnx_predict.py) preprocess inputs
exactly as validation did and read the outputs as predict.py does with the checkpoint.
"""

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import CheckpointError, ConfigError

METADATA_KEY = "classifier.json"  # classification
METADATA_KEY = "regressor.json"  # regression
OUTPUT_NAME = "logits"  # classification
OUTPUT_NAME = "outputs"  # regression
OUTPUT_MEANING = "a logit per class of data_info's classes, in order; softmax gives probabilities"  # classification
OUTPUT_MEANING = "each target of data_info's targets, standardised: x std + mean is the target's value"  # regression
METADATA_KEY = "tagger.json"  # multilabel
OUTPUT_NAME = "logits"  # multilabel
OUTPUT_MEANING = "a logit per label of data_info's labels; a sigmoid at or above the label's threshold says yes"  # multilabel
INSTALL = "pip install -e '.[export]'"  # onnx, onnxscript and onnxruntime


def batch_axis() -> dict:
    """The first input dimension is free: any batch size runs."""
    return {0: torch.export.Dim("batch", min=1)}


def export_onnx(model, example, path: Path, metadata: str) -> None:
    try:  # torch.onnx's exporter is written in onnxscript
        import onnxscript  # noqa: F401
    except ModuleNotFoundError as err:
        raise ConfigError(f"--format onnx needs the {err.name} package, not installed here: {INSTALL}") from None
    program = torch.onnx.export(
        model,
        (example,),
        input_names=["input"],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=(batch_axis(),),
        dynamo=True,
        verbose=False,
    )
    program.model.metadata_props[METADATA_KEY] = metadata
    program.save(path)


def export_program(model, example, path: Path, metadata: str) -> None:
    program = torch.export.export(model, (example,), dynamic_shapes=(batch_axis(),))
    torch.export.save(program, path, extra_files={METADATA_KEY: metadata})


def export_torchscript(model, example, path: Path, metadata: str) -> None:
    with warnings.catch_warnings():  # deprecated in PyTorch (export.py says so once); kept for old runtimes
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        torch.jit.save(torch.jit.trace(model, example), path, _extra_files={METADATA_KEY: metadata})


def onnxruntime_session(path: Path):
    try:
        import onnxruntime
    except ModuleNotFoundError:
        raise ConfigError(f"running {path.name} needs onnxruntime, not installed here: {INSTALL}") from None
    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own kinds for a truncated or foreign file
        raise CheckpointError(f"{path} is not a readable ONNX model ({str(err).splitlines()[0]})") from None


def load_onnx(path: Path):
    """(outputs = run(inputs), metadata) with onnxruntime on the CPU."""
    session = onnxruntime_session(path)
    metadata = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)

    def run(inputs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run([OUTPUT_NAME], {"input": inputs.float().contiguous().numpy()})[0])

    return run, metadata


def load_program(path: Path):
    extra = {METADATA_KEY: ""}
    program = torch.export.load(path, extra_files=extra)
    return program.module(), extra[METADATA_KEY]


def load_torchscript(path: Path):
    extra = {METADATA_KEY: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        return torch.jit.load(path, map_location="cpu", _extra_files=extra), extra[METADATA_KEY]


@dataclass(frozen=True)
class Format:
    suffix: str
    export: callable  # (model, example, path, metadata JSON) -> None
    load: callable  # path -> (callable inputs -> outputs, metadata JSON)
    runtime: str  # what runs the parity check


FORMATS = {
    "onnx": Format(".onnx", export_onnx, load_onnx, "onnxruntime"),
    "exported": Format(".pt2", export_program, load_program, "torch.export.load"),
    "torchscript": Format(".torchscript.pt", export_torchscript, load_torchscript, "torch.jit.load"),
}


def read_metadata(path: Path, text: str | None) -> dict:
    if not text:
        raise CheckpointError(f"{path} was not exported by this project's export.py (no {METADATA_KEY} metadata)")
    return json.loads(text)


def load_exported(path) -> tuple:
    """(run, metadata) of an exported file, by its suffix."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"exported model {path} does not exist")
    name = next((name for name, fmt in FORMATS.items() if path.name.endswith(fmt.suffix)), None)
    if name is None:
        raise CheckpointError(f"{path}: not an exported model ({', '.join(f.suffix for f in FORMATS.values())})")
    run, text = FORMATS[name].load(path)
    return run, read_metadata(path, text)


def failing_operator(err: Exception) -> str:
    """What an exporter failed on, from its message: the operator, else the line of model code, else its summary."""
    text = str(err)
    if found := re.search(r"OpOverload\(op='([\w.]+)'", text) or re.search(r"target=torch\.ops\.(\w+\.\w+)", text):
        return f"operator {found[1]}"
    if found := re.search(r'raised this error:\s+File "([^"]+)", line (\d+), in \w+\s+(.+)', text):
        return f"`{found[3].strip()}` ({Path(found[1]).name}:{found[2]})"
    summary = text.split("## Exception summary", 1)[-1].strip().splitlines()
    return summary[0][:300] if summary else type(err).__name__
