"""Predict with an exported .onnx model alone: numpy and onnxruntime, no torch, no project code.

    pip install numpy onnxruntime
    python onnx_predict.py best.onnx new_rows.csv --output predictions.csv

Copy this file and the .onnx file (from `python export.py CHECKPOINT`) wherever the model should run.
The preprocessing learned from train travels in the .onnx file and is applied as in training: a gap
in a numeric column is filled with the train median (and flagged where train had gaps), numbers are
standardised with the train mean and std, categories become one-hot columns or, for columns with many
levels, codes the model embeds; a level train never had counts as unknown. An empty cell, or one of the
training's gap tokens (NA, ?, ...), is a gap. Columns are matched by name; others are ignored.

The model gives a logit per label; its sigmoid is the label's score, and a score at or above the
label's threshold (tuned on the validation split in training, in the .onnx file too) predicts it. The
CSV has predict.py's columns: input (`file:line`, the header being line 1), the id columns, then
`prediction` (the predicted labels joined by the training's label separator, empty for none) and one
p_<label> score per label.
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


def scores(logits: np.ndarray) -> np.ndarray:
    """Each label's score: the sigmoid of its logit, in float32 as the model computes it."""
    with np.errstate(over="ignore"):  # exp(-logit) of a very negative logit is inf: a score of 0
        return (1.0 / (1.0 + np.exp(-logits.astype(np.float32)))).astype(np.float32)


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
    metadata = json.loads(session.get_modelmeta().custom_metadata_map["tagger.json"])
    info = metadata["data_info"]
    labels, thresholds = metadata["labels"], np.array(metadata["thresholds"], dtype=np.float64)
    separator = info.get("label_separator", ";")

    with open(args.output, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        ids = info.get("id_columns", [])  # copied from each row, to join the predictions back
        writer.writerow(["input", *ids, "prediction", *(f"p_{label}" for label in labels)])
        for path in args.inputs:
            rows = read_rows(path, info["feature_columns"])
            logits = session.run([metadata["output"]["name"]], {"input": encode(rows, info)})[0]
            for line, (cells, values) in enumerate(zip(rows, scores(logits), strict=True), start=2):
                named = [f"{path}:{line}", *(cells.get(name, "") for name in ids)]
                said = separator.join(label for label, yes in zip(labels, values >= thresholds, strict=True) if yes)
                writer.writerow([*named, said, *(f"{value:.6g}" for value in values.tolist())])
    print(f"predicted the rows of {len(args.inputs)} file(s); wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
