"""Export a checkpoint to run without this project: ONNX (default), torch.export, or TorchScript; parity checked.

Examples:
    python export.py runs/baseline/checkpoints/best.pt              # runs/baseline/export/best.onnx
    python export.py runs/baseline --format exported                # runs/baseline/export/last.pt2
    python export.py runs/baseline --output model.onnx data.root=/data/mine

The exported model takes a float32 batch of any size, preprocessed as validation data is, and returns
the model's outputs. The file carries what that preprocessing needs and what the outputs mean (see
{{ cookiecutter.package_name }}/deploy.py), and a JSON copy is written beside it (<output>.json). Before
anything is written, the exported model runs on a batch of the validation split next to the PyTorch model
in eval mode: an output that differs by more than --atol + --rtol x |output| (as torch.testing.assert_close
judges) refuses the export (exit code 2). predict.py runs the exported files; deploy/onnx_predict.py runs
.onnx ones with numpy and onnxruntime alone.
"""

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint, load_model_weights, resolve_checkpoint_path, run_dir_of
from {{ cookiecutter.package_name }}.config import load_config, to_dict
from {{ cookiecutter.package_name }}.data import build_datasets
from {{ cookiecutter.package_name }}.deploy import FORMATS, OUTPUT_MEANING, OUTPUT_NAME, failing_operator
from {{ cookiecutter.package_name }}.errors import ConfigError, ExportError, run_main
from {{ cookiecutter.package_name }}.models import build_model
from {{ cookiecutter.package_name }}.task import thresholds_of  # multilabel
from {{ cookiecutter.package_name }}.utils import atomic_write, atomic_write_text, setup_logging

log = logging.getLogger("{{ cookiecutter.package_name }}.export")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a .pt file, or a run dir (uses its last.pt)")
    parser.add_argument("--format", choices=list(FORMATS), default="onnx", help="default: %(default)s")
    parser.add_argument("--output", type=Path, help="default: <run_dir>/export/<checkpoint name>.<format's suffix>")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--atol", type=float, default=1e-4, help="absolute output tolerance (default: %(default)g)")
    parser.add_argument("--rtol", type=float, default=1e-4, help="relative output tolerance (default: %(default)g)")
    parser.add_argument("--samples", type=int, default=64, help="validation samples the parity check runs")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides (data.root, ...)")
    return parser.parse_intermixed_args(argv)


def validation_batch(cfg, data_info: dict, samples: int) -> torch.Tensor:
    """Up to `samples` validation inputs, preprocessed as training's validation was."""
    val_set = build_datasets(cfg, data_info)[1]
    loader = DataLoader(val_set, batch_size=min(samples, len(val_set)), collate_fn=val_set.collate_fn)
    return next(iter(loader))[0].float()


def export_model(fmt: str, model, example: torch.Tensor, path: Path, metadata: dict) -> None:
    """Write `path`; an exporter's failure becomes one line naming what it failed on."""
    try:
        FORMATS[fmt].export(model, example, path, json.dumps(metadata))
    except ConfigError:
        raise
    except Exception as err:
        raise ExportError(
            f"--format {fmt}: model {metadata['config']['model']['name']!r} does not export; it failed at "
            f"{failing_operator(err)}. Try --format {'exported' if fmt == 'onnx' else 'onnx'}, or change that "
            "part of the model."
        ) from None


def check_parity(run, model, inputs: torch.Tensor, atol: float, rtol: float, fmt: str) -> dict:
    """The exported model's outputs against the PyTorch model's; outside the tolerance: ExportError."""
    with torch.no_grad():
        expected = model(inputs)
        got = run(inputs)
    difference = (got - expected).abs()
    parity = {
        "samples": len(inputs),
        "max_abs_diff": difference.max().item(),
        "max_abs_output": expected.abs().max().item(),
        "outside_tolerance": (~(difference <= atol + rtol * expected.abs())).sum().item(),  # NaN counts
        "atol": atol,
        "rtol": rtol,
    }
    parity["argmax_agreement"] = (got.argmax(1) == expected.argmax(1)).float().mean().item()  # classification
    log.info(
        "parity on %d validation samples, %s vs PyTorch: max |output difference| %.3g (largest |output| %.3g)",
        len(inputs),
        FORMATS[fmt].runtime,
        parity["max_abs_diff"],
        parity["max_abs_output"],
    )
    log.info("the predicted class agrees on %.1f%% of them", 100 * parity["argmax_agreement"])  # classification
    if parity["outside_tolerance"]:
        raise ExportError(
            f"the {fmt} export computes other outputs than the model: {parity['outside_tolerance']} of "
            f"{expected.numel()} differ by more than --atol {atol:g} + --rtol {rtol:g} x |output| (max |difference| "
            f"{parity['max_abs_diff']:.3g}); nothing was written. Try another --format, or raise the tolerances if "
            "the difference is acceptable."
        )
    return parity


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    fmt = FORMATS[args.format]
    ckpt_path = resolve_checkpoint_path(args.checkpoint)
    output = args.output or run_dir_of(ckpt_path) / "export" / (ckpt_path.stem + fmt.suffix)
    sidecar = output.with_name(output.name + ".json")
    if not output.name.endswith(fmt.suffix):
        raise ConfigError(f"--output {output}: a --format {args.format} file name ends in {fmt.suffix}")
    if (output.exists() or sidecar.exists()) and not args.overwrite:
        raise ConfigError(f"{output} or {sidecar.name} exists; pass --overwrite to replace them, or choose --output")

    state = load_checkpoint(ckpt_path)
    cfg = load_config(base=state["config"], overrides=args.overrides)
    data_info = state["data_info"]
    model = build_model(cfg, data_info)
    load_model_weights(model, state, ckpt_path)
    model.eval()  # dropout off, BatchNorm's running statistics: what inference computes
    inputs = validation_batch(cfg, data_info, args.samples)
    example = inputs[:2] if len(inputs) > 1 else inputs.repeat(2, *[1] * (inputs.dim() - 1))  # batch 1 would be fixed
    metadata = {
        "format": args.format,
        "checkpoint": str(ckpt_path),
        "epoch": state["epoch"],
        "classes": [str(name) for name in data_info["classes"]],  # classification
        "labels": [str(name) for name in data_info["labels"]],  # multilabel
        "thresholds": thresholds_of(data_info).tolist(),  # each label's, tuned on val  # multilabel
        "input": {"name": "input", "dtype": "float32", "shape": ["batch", *example.shape[1:]]},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", data_info["num_outputs"]], "meaning": OUTPUT_MEANING},
        "data_info": data_info,
        "config": to_dict(cfg),
    }
    if args.format == "torchscript":
        log.warning("TorchScript is deprecated in PyTorch; --format exported (torch.export) is its successor")
    with tempfile.TemporaryDirectory(prefix="export-") as scratch:
        exported = Path(scratch) / output.name  # checked before it is copied: a refused export leaves nothing
        export_model(args.format, model, example, exported, metadata)
        try:
            run = fmt.load(exported)[0]
        except ConfigError as err:  # onnxruntime is not installed: the export stands, unchecked
            log.warning("parity not checked: %s", err)
            parity = None
        else:
            parity = check_parity(run, model, inputs, args.atol, args.rtol, args.format)
        with open(exported, "rb") as source:
            atomic_write(output, lambda file: shutil.copyfileobj(source, file))
    atomic_write_text(sidecar, json.dumps({**metadata, "file": output.name, "parity": parity}, indent=2) + "\n")
    size = output.stat().st_size / 2**20
    log.info("wrote %s (%.1f MiB, %s) and %s", output, size, args.format, sidecar.name)
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
