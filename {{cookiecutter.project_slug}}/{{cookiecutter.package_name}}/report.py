"""Evaluation reports: a model over a split, the task's report of it, its files.

`predict_split` runs a model over a dataset and keeps, per sample, its index, target and the task's outputs
(task.py's batch_outputs); task.py's `build_report` turns them into the numbers and its `write_report`
writes them under `<run_dir>/eval/<split>/`. evaluate.py and the end of training both go through
`evaluate_split`.
"""

import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from .checkpoint import load_checkpoint, load_model_weights
from .engine import predict
from .errors import DataError
from .report_images import log_skipped  # images
from .task import batch_outputs, build_report, mean_divisor, summary, write_report

log = logging.getLogger(__name__)


class Indexed(Dataset):
    """`dataset[i]` with `i` appended, so every prediction keeps the sample it belongs to."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        item = self.dataset[index]
        return None if item is None else (*item, index)  # None: skipped as corrupt (data.skip_corrupt)


def collate_kept(batch):
    """default_collate of the samples that were not skipped; None when all were."""
    batch = [item for item in batch if item is not None]
    return default_collate(batch) if batch else None


@torch.inference_mode()
def predict_split(model, criterion, dataset, cfg, device, **loader_options) -> dict:
    """{"index", "target", "output" (the task's batch_outputs), "loss_sum", "weight_sum"} over `dataset` (or its
    `sampler`'s samples), through the engine's `predict`, as validation runs the model; the loss is summed as
    there (task.py's `mean_divisor`)."""
    loader = DataLoader(
        Indexed(dataset),
        batch_size=cfg.data.batch_size,
        num_workers=cfg.data.num_workers,
        collate_fn=collate_kept,
        **loader_options,
    )
    model.eval()
    indices = []
    targets = []
    output = []
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    weight_sum = torch.zeros((), dtype=torch.float64, device=device)
    for batch in loader:
        if batch is None:
            continue
        inputs, target, index = batch
        inputs, target = inputs.to(device), target.to(device)
        logits = predict(model, inputs, device, cfg)
        divisor = mean_divisor(criterion, target)
        loss_sum += criterion(logits, target).double() * divisor
        weight_sum += divisor
        indices.append(index)
        targets.append(target.cpu())
        output.append(batch_outputs(logits).cpu())
    if not indices:  # nothing to predict, or every sample skipped
        return {"index": torch.empty(0, dtype=torch.int64), "loss_sum": 0.0, "weight_sum": 0.0}
    return {
        "index": torch.cat(indices),
        "target": torch.cat(targets),
        "output": torch.cat(output),
        "loss_sum": loss_sum.item(),
        "weight_sum": weight_sum.item(),
    }


def evaluate_split(
    model, criterion, dataset, data_info: dict, cfg, device, out_dir: Path | None, predict_outputs=predict_split
) -> dict:
    """Predict `dataset`, build its report and (with `out_dir`) write its files; returns the report.
    `predict_outputs` takes `predict_split`'s arguments and returns its outputs, for every sample."""
    outputs = predict_outputs(model, criterion, dataset, cfg, device)
    log_skipped(dataset)  # images
    if not len(outputs["index"]):
        raise DataError("no samples to evaluate: the split is empty, or every sample in it was skipped")
    report = build_report(outputs, data_info)
    if out_dir is not None:
        write_report(report, outputs, dataset, data_info, out_dir)
    return report


def report_best(model, criterion, datasets: dict, cfg, run_dir: Path, device, **options) -> None:
    """The end of training: the best checkpoint (else last.pt) on each split, reports in `<run_dir>/eval/`, with
    that checkpoint's weights and its own data info (what its epoch's validation left there)."""
    checkpoints = run_dir / "checkpoints"
    path = checkpoints / "best.pt" if (checkpoints / "best.pt").is_file() else checkpoints / "last.pt"
    state = load_checkpoint(path)
    load_model_weights(model, state, path)
    data_info = state["data_info"]
    write = options.pop("write", True)
    for split, dataset in datasets.items():
        out_dir = run_dir / "eval" / split
        written = out_dir if write else None
        report = evaluate_split(model, criterion, dataset, data_info, cfg, device, written, **options)
        samples = report["num_samples"]
        log.info("%s on %s: %s  (%d samples; report in %s)", path.name, split, summary(report), samples, out_dir)
