"""Regression: one or more numbers per sample. What the task decides lives here, and only here: the targets'
scaling, the loss, the running metrics of an epoch, metrics.csv's columns, the evaluation report and
predict.py's columns. The loop, the checkpoints and the trackers call these by name.

The model learns standardised targets ((y - mean) / std with the train split's mean and std, kept in
`data_info["targets"]` and so in every checkpoint); everything a person reads (metrics.csv, the reports,
predict.py's columns, also from an exported model) is turned back into the targets' own units by `decode`.
"""

import csv
import io
import json
import logging
import math
from pathlib import Path

import torch
import torch.nn as nn

from .utils import atomic_write, atomic_write_text

log = logging.getLogger(__name__)

TASK = "regression"  # saved in every checkpoint: evaluate/predict/export refuse one of another task
MONITORS = {"val_rmse": "min", "val_mae": "min", "val_r2": "max", "val_loss": "min"}  # trainer.monitor
EPOCH_FIELDS = ["train_loss", "train_rmse", "val_loss", "val_mae", "val_rmse", "val_r2"]  # metrics.csv, per epoch
CURVE = ("rmse", "RMSE (target units)", None)  # curves.png's second panel: train_rmse and val_rmse, no fixed range
OUTPUTS = "targets"  # what the head's outputs are, in messages
LOSSES = {"mse": nn.MSELoss, "huber": nn.HuberLoss, "l1": nn.L1Loss}  # trainer.loss, on standardised targets
CONSTANT_SHARE = 1e-12  # RunningSums: a target whose variance is below this share of its mean square is constant
# Keys of other tasks, and why they are not this one's: named when a config sets them.
OTHER_TASKS_KEYS = {
    "trainer.label_smoothing": "regression targets are numbers, with nothing to smooth (see trainer.loss)",
    "trainer.class_weights": "regression targets are numbers, with no weight per value (see trainer.loss)",
}


def decode(outputs: torch.Tensor, data_info: dict) -> torch.Tensor:
    """float64 (N, T) in the targets' units, from standardised outputs (or targets)."""
    mean, std = _stats(data_info)
    return outputs.double() * std + mean


def _stats(data_info: dict) -> tuple[torch.Tensor, torch.Tensor]:
    targets = data_info["targets"]
    mean = torch.tensor([t["mean"] for t in targets], dtype=torch.float64)
    return mean, torch.tensor([t["std"] for t in targets], dtype=torch.float64)


def output_names(data_info: dict) -> list[str]:
    """What each of the head's outputs stands for: the targets (a checkpoint of another task: none)."""
    return [target["name"] for target in data_info.get("targets", [])]


def describe(data_info: dict) -> str:
    names = [t["name"] for t in data_info["targets"]]
    return f"{len(names)} target{'s' * (len(names) > 1)} ({', '.join(names)})"


def build_criterion(cfg, data_info: dict) -> nn.Module:
    """trainer.loss on the standardised targets: mse, huber (delta 1: one train std) or l1."""
    return LOSSES[cfg.trainer.loss]()


def mean_divisor(criterion, targets: torch.Tensor):
    """What `criterion`'s mean divides the batch's summed loss by: every target of every sample."""
    return targets.numel()


class RunningSums:
    """Summed loss and, per target, the squared and absolute errors and the targets and their squares (for R2),
    in standardised units, float64 on the device; read (one host sync) only in `result`. With `data_info`
    (validation) the errors come out in the targets' units; without (training), `epoch_row` converts them."""

    def __init__(self, device: torch.device, data_info: dict | None = None):
        self.std = _stats(data_info)[1] if data_info else None
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.weight = torch.zeros((), dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.int64, device=device)
        width = 0 if self.std is None else len(self.std)  # 0: set by the first batch
        self.errors = torch.zeros((4, width), dtype=torch.float64, device=device)  # sq, abs, y, y^2 per target

    @classmethod
    def for_validation(cls, device, data_info: dict | None) -> "RunningSums":
        return cls(device, data_info)

    def totals(self) -> dict:
        """Every sum by name, as a mid-epoch checkpoint keeps them."""
        return {"loss": self.loss, "weight": self.weight, "count": self.count, "errors": self.errors}

    def state(self) -> dict:
        return {name: total.cpu() for name, total in self.totals().items()}

    def restored(self, state: dict) -> "RunningSums":
        """These sums continued from `state` (a resumed epoch's first part); {}: from zero."""
        for name, total in self.totals().items() if state else ():
            setattr(self, name, state[name].to(total.device, total.dtype, copy=True))
        return self

    def add(self, mean_loss: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor, criterion=None) -> None:
        self.loss += mean_loss.detach().double() * targets.numel()
        self.weight += targets.numel()
        self.count += targets.shape[0]
        if not self.errors.shape[1]:
            self.errors = torch.zeros((4, targets.shape[1]), dtype=torch.float64, device=targets.device)
        y = targets.double()
        error = outputs.detach().double() - y
        self.errors += torch.stack([error.square().sum(0), error.abs().sum(0), y.sum(0), y.square().sum(0)])

    def result(self, what: str) -> dict:
        count = int(self.count.item())
        if count == 0:
            raise RuntimeError(f"the {what} loader produced no samples (is data.batch_size larger than the data?)")
        loss = self.loss.item() / self.weight.item()
        if not math.isfinite(loss):
            raise FloatingPointError(f"{what} loss is {loss}; try a lower optim.lr or trainer.grad_clip_norm")
        squared, absolute, total, total_sq = self.errors.cpu()
        std = torch.ones(len(squared), dtype=torch.float64) if self.std is None else self.std
        spread = total_sq - total.square() / count  # n x each target's variance, standardised
        # A target that does not vary leaves only rounding in `spread`: its R2 is undefined (NaN), not -1e28.
        varies = spread > CONSTANT_SHARE * total_sq
        r2 = torch.where(varies, 1 - squared / spread.clamp_min(1e-300), torch.nan)
        per_target = {"mae": absolute / count * std, "rmse": (squared / count).sqrt() * std, "r2": r2}
        means = {name: values.mean().item() for name, values in per_target.items()}  # one target: its own
        return {"loss": loss, **means, "num_samples": count, "per_target": per_target}


def epoch_row(train: dict, val: dict, data_info: dict) -> dict:
    """An epoch's metrics.csv columns (EPOCH_FIELDS), in the targets' units; with several targets, the mean
    over them. The train sums are standardised: their RMSE is scaled by the train std here."""
    train_rmse = (train["per_target"]["rmse"] * _stats(data_info)[1]).mean().item()
    row = {"train_loss": train["loss"], "train_rmse": train_rmse, "val_loss": val["loss"]}
    return row | {"val_mae": val["mae"], "val_rmse": val["rmse"], "val_r2": val["r2"]}


def batch_outputs(outputs: torch.Tensor) -> torch.Tensor:
    """What the reports and predict.py keep of a batch: the standardised predictions (`decode` turns them
    into units)."""
    return outputs.float()


def build_report(outputs: dict, data_info: dict) -> dict:
    """loss, MAE, RMSE and R2 in the targets' units (the mean over the targets, and `per_target` with several)."""
    predicted, actual = decode(outputs["output"], data_info), decode(outputs["target"], data_info)
    error = predicted - actual
    mae, rmse = error.abs().mean(0), error.square().mean(0).sqrt()
    spread = (actual - actual.mean(0)).square().sum(0)  # > 0 by rounding alone when a target is constant
    varies = (actual != actual[:1]).any(0)
    r2 = torch.where(varies, 1 - error.square().sum(0) / spread.clamp_min(1e-300), torch.nan)
    report = {"loss": outputs["loss_sum"] / outputs["weight_sum"], "num_samples": len(error)}
    report |= {"mae": mae.mean().item(), "rmse": rmse.mean().item(), "r2": _number(r2.mean().item())}
    names = [t["name"] for t in data_info["targets"]]
    if len(names) > 1:
        report["per_target"] = {
            name: {"mae": mae[j].item(), "rmse": rmse[j].item(), "r2": _number(r2[j].item())}
            for j, name in enumerate(names)
        }
    return report


def _number(value: float) -> float | None:
    """None (JSON null) for R2 of a target that does not vary: undefined, not a number to compare."""
    return value if math.isfinite(value) else None


def summary(report: dict) -> str:
    r2 = "undefined" if report["r2"] is None else f"{report['r2']:.4f}"
    return f"MAE {report['mae']:.4g}  RMSE {report['rmse']:.4g}  R2 {r2}"


def format_report(report: dict, split: str) -> str:
    """A readable table of the report's numbers (for stderr)."""
    lines = [f"{split}: {report['num_samples']} samples  loss {report['loss']:.4f}  {summary(report)}"]
    for name, scores in report.get("per_target", {}).items():
        lines.append(f"  {name}: {summary(scores)}")
    return "\n".join(lines)


def write_report(report: dict, outputs: dict, dataset, data_info: dict, out_dir: Path) -> None:
    """report.json, predictions.csv (every sample, in order), residuals.csv (the same rows, largest miss
    first) and predicted_vs_actual.png in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    predicted, actual = decode(outputs["output"], data_info), decode(outputs["target"], data_info)
    names = [t["name"] for t in data_info["targets"]]
    ids = getattr(dataset, "id_columns", [])  # values that name each sample (e.g. a CSV's id columns), to join on
    source = getattr(dataset, "source", str)  # `file:line`; a dataset of your own may not say: the index
    prefixes = [""] if len(names) == 1 else [f"{name}_" for name in names]  # one target: plain column names
    columns = [f"{prefix}{column}" for prefix in prefixes for column in ("target", "prediction", "residual")]
    header = ["index", "source", *ids, *columns]
    rows = []
    for i, index in enumerate(outputs["index"].tolist()):
        row = [index, source(index), *(dataset.ids(index) if ids else [])]
        for j in range(len(names)):
            row += [f"{actual[i, j]:.6g}", f"{predicted[i, j]:.6g}", f"{predicted[i, j] - actual[i, j]:.6g}"]
        rows.append(row)
    atomic_write_text(out_dir / "predictions.csv", csv_text([header, *rows]))
    scaled = ((predicted - actual) / _stats(data_info)[1]).abs().amax(1)  # the largest miss of each sample, in stds
    worst = scaled.argsort(descending=True).tolist()
    atomic_write_text(out_dir / "residuals.csv", csv_text([header, *(rows[i] for i in worst)]))
    figure = scatter(predicted, actual, names)
    atomic_write(out_dir / "predicted_vs_actual.png", lambda file: figure.savefig(file, format="png", dpi=100))


def scatter(predicted: torch.Tensor, actual: torch.Tensor, names: list[str]):
    """One panel per target: prediction against truth, with the line where they are equal."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.5 * len(names), 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    for axes, j, name in zip(figure.subplots(1, len(names), squeeze=False)[0], range(len(names)), names, strict=True):
        low = min(actual[:, j].min().item(), predicted[:, j].min().item())
        high = max(actual[:, j].max().item(), predicted[:, j].max().item())
        axes.plot([low, high], [low, high], color="grey", linewidth=1, label="prediction = truth")
        axes.scatter(actual[:, j].numpy(), predicted[:, j].numpy(), s=8, alpha=0.6)
        axes.set_xlabel(f"true {name}")
        axes.set_ylabel(f"predicted {name}")
        axes.grid(alpha=0.3)
        axes.legend(loc="upper left")
    return figure


def prediction_table(outputs: torch.Tensor, data_info: dict) -> tuple[list[str], list[list]]:
    """predict.py's columns after the input's: `prediction` (one target) or one column per target, in units."""
    names = [t["name"] for t in data_info["targets"]]
    values = decode(outputs, data_info).tolist()
    return (["prediction"] if len(names) == 1 else names), [[f"{v:.6g}" for v in row] for row in values]


def csv_text(rows: list[list]) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue()
