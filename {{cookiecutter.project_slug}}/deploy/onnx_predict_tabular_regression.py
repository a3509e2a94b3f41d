"""Predict with an exported .onnx model alone: numpy and onnxruntime, no torch, no project code.

    pip install numpy onnxruntime
    python onnx_predict.py best.onnx new_rows.csv --output predictions.csv

Copy this file and the .onnx file (from `python export.py CHECKPOINT`) wherever the model should run.
The preprocessing learned from train travels in the .onnx file and is applied as in training: a gap
in a numeric column is filled with the train median (and flagged where train had gaps), numbers are
standardised with the train mean and std, categories become one-hot columns or, for columns with many
levels, codes the model embeds; a level train never had counts as unknown. An empty cell, or one of the
training's gap tokens (NA, ?, ...), is a gap. Columns are matched by name; others are ignored.

The model predicts each target standardised; its train mean and std, in the .onnx file too, turn the
predictions back into the target's units. The CSV has predict.py's columns: input (`file:line`, the
header being line 1), the id columns, then `prediction` (one target) or one column per target, by name.
"""

import argparse
import csv
import json
import sys

import numpy as np
import onnxruntime


def encode(rows: list[dict], info: dict) -> np.ndarray:
    """float32 (N, num_features): numbers (and missing flags), one-hot levels, then embedded codes."""
    gap = {"", *info.get("na_values", [])}  # cells read as gaps in training
    dense = []
    embedded = []
    for column in info["numeric"]:
        values = np.array([np.nan if row[column["name"]] in gap else float(row[column["name"]]) for row in rows])
        if np.isinf(values).any():
            sys.exit(f"error: column {column['name']!r} holds an infinite value")
        gaps = np.isnan(values)
        dense.append((np.where(gaps, column["median"], values) - column["mean"]) / column["std"])
        if column["missing_indicator"]:
            dense.append(gaps)
    for column in info["categorical"]:
        index = {level: i for i, level in enumerate(column["levels"])}
        unknown = len(column["levels"])
        cells = [row[column["name"]] for row in rows]
        codes = np.array([index.get("" if cell in gap else cell.strip(), unknown) for cell in cells])
        if column["embedding_dim"]:
            embedded.append(codes)
        else:
            dense += [codes == level for level in range(unknown)]
    columns = dense + embedded
    return np.stack(columns, axis=1).astype(np.float32) if columns else np.zeros((len(rows), 0), np.float32)


def decode(outputs: np.ndarray, targets: list[dict]) -> np.ndarray:
    """float64 (N, targets) in the targets' units, from the model's standardised outputs."""
    mean = np.array([target["mean"] for target in targets], dtype=np.float64)
    std = np.array([target["std"] for target in targets], dtype=np.float64)
    return outputs.astype(np.float64) * std + mean


def read_rows(path: str, columns: list[str]) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as file:  # utf-8-sig: Excel's byte-order mark
        reader = csv.reader(file)
        header = [name.strip() for name in next(reader, [])]
        if missing := [name for name in columns if name not in header]:
            sys.exit(f"error: {path} has no column {missing}; the model needs {columns}")
        rows = list(reader)
    if bad := [line for line, row in enumerate(rows, start=2) if len(row) != len(header)]:
        sys.exit(f"error: {path} line {bad[0]} has another number of cells than the header ({len(header)})")
    return [dict(zip(header, row, strict=True)) for row in rows]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="an .onnx file written by export.py")
    parser.add_argument("inputs", nargs="+", help="CSV files with the model's feature columns")
    parser.add_argument("--output", default="predictions.csv", help="default: %(default)s")
    args = parser.parse_args(argv)
    session = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    metadata = json.loads(session.get_modelmeta().custom_metadata_map["regressor.json"])
    info = metadata["data_info"]
    targets = info["targets"]  # name, train mean and std of each target, in the model's output order
    names = ["prediction"] if len(targets) == 1 else [target["name"] for target in targets]

    with open(args.output, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        ids = info.get("id_columns", [])  # copied from each row, to join the predictions back
        writer.writerow(["input", *ids, *names])
        for path in args.inputs:
            rows = read_rows(path, info["feature_columns"])
            outputs = session.run([metadata["output"]["name"]], {"input": encode(rows, info)})[0]
            for line, (cells, values) in enumerate(zip(rows, decode(outputs, targets), strict=True), start=2):
                named = [f"{path}:{line}", *(cells.get(name, "") for name in ids)]
                writer.writerow([*named, *(f"{value:.6g}" for value in values)])
    print(f"predicted the rows of {len(args.inputs)} file(s); wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
