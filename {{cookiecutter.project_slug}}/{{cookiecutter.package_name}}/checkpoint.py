"""Checkpoints and run dirs: atomic writes, safe (`weights_only=True`) loads, clear errors, resume.

A checkpoint is a dict of tensors and plain Python values only, so it loads with
`torch.load(path, weights_only=True)`: no pickled code runs when you open one.
"""

import logging
import os
import pickle
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from .config import load_config
from .errors import CheckpointError, ConfigError
from .task import MONITORS, OUTPUTS, TASK, output_names
from .utils import atomic_write

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PREFIXES = ("module.", "_orig_mod.")  # added by torch.nn.parallel wrappers and torch.compile


def save_checkpoint(state: dict, path) -> None:
    """Atomic: a crash at any moment leaves either the old file or the new one, never half of one. A failed
    write (a full disk) stops the run with a clear error; the file from before stays as it was."""
    path = Path(path)
    state = {**state, "task": TASK}  # what the model predicts: a checkpoint of another task is refused by name
    try:
        atomic_write(path, lambda file: torch.save(state, file))
    except OSError as err:
        run_dir = run_dir_of(path)
        raise CheckpointError(
            f"cannot write {path} ({err.strerror or err}); the run stopped, and {path.name} from before is "
            f"intact. Free space (or fix the folder), then continue with: python train.py --resume {run_dir}"
        ) from None


def ranked_epochs(history: list[dict], monitor: str) -> list[int]:
    """The epochs of `history` from the best by `monitor` to the worst; of equal ones, the earliest first
    (as BestTracker counts an improvement)."""
    sign = -1 if MONITORS[monitor] == "max" else 1
    return [row["epoch"] for row in sorted(history, key=lambda row: (sign * row[monitor], row["epoch"]))]


def save_epoch_checkpoints(state: dict, folder: Path, history: list[dict], monitor: str, keep: int) -> None:
    """After an epoch: best.pt when it is the best (`trainer.monitor`), the runners-up of the `keep` best
    (`trainer.keep_checkpoints`) as epoch-NNNN.pt, then last.pt. A file is removed only after the new ones are
    durable, and best before last: a crash in between only repeats this epoch on resume."""
    epoch = history[-1]["epoch"]
    ranked = ranked_epochs(history, monitor)
    kept = ranked[1:keep]
    if ranked[0] == epoch:
        before = ranked_epochs(history[:-1], monitor)[:1]  # the best until now: a runner-up from here on
        if before and before[0] in kept and (folder / "best.pt").is_file():
            keep_as(folder / "best.pt", folder / f"epoch-{before[0]:04d}.pt")
        save_checkpoint(state, folder / "best.pt")
    elif epoch in kept:
        save_checkpoint(state, folder / f"epoch-{epoch:04d}.pt")
    for path in folder.glob("epoch-*.pt"):
        if path.stem.removeprefix("epoch-").isdigit() and int(path.stem.removeprefix("epoch-")) not in kept:
            path.unlink()
    save_checkpoint(state, folder / "last.pt")


def keep_as(path: Path, target: Path) -> None:
    """A second name for `path`'s file: a hard link (no copy, atomic), else an atomic copy."""
    target.unlink(missing_ok=True)
    try:
        os.link(path, target)
    except OSError:
        atomic_write(target, lambda file: file.write(path.read_bytes()))


def resolve_checkpoint_path(path, prefer: str = "last.pt") -> Path:
    """A run dir means its `checkpoints/<prefer>`, else its last.pt (logged); --resume keeps last.pt."""
    path = Path(path)
    if path.is_dir():
        folder = path / "checkpoints"
        path = folder / prefer if (folder / prefer).is_file() else folder / "last.pt"
        log.info("run dir %s: using %s", folder.parent, path.name)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (give a run dir or a .pt file)")
    return path


def run_dir_of(path: Path) -> Path:
    """<run_dir>/checkpoints/x.pt -> <run_dir>; a checkpoint elsewhere: its own folder."""
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def load_checkpoint(path, map_location="cpu") -> dict:
    path = resolve_checkpoint_path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):
            raise CheckpointError(
                f"{path} holds objects other than tensors and plain values, so torch.load(weights_only=True) "
                "refuses it (loading it could run arbitrary code). Re-save it as a state_dict, or load it "
                "yourself only if you trust its source."
            ) from None
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {err}") from None
    except Exception as err:  # torch raises many kinds for a truncated or foreign file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path} is truncated or not a PyTorch checkpoint ({reason})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a checkpoint written by this project (no 'model' entry)")
    if state.get("task", TASK) != TASK:
        raise CheckpointError(
            f"{path} is a checkpoint of a {state['task']} model; this project's models are {TASK} models, and "
            "evaluate.py, predict.py, export.py and --resume take only those (model.weights=... can still start "
            "from its weights)"
        )
    return state


def strip_prefixes(state_dict: dict, own=()) -> dict:
    """Drop `module.` / `_orig_mod.` prefixes so any wrapped model's weights load into the bare one; a key the
    model (`own` keys) has as it is keeps its prefix (a model of its own may have a `module` attribute)."""
    clean = {}
    for key, value in state_dict.items():
        while key not in own and key.startswith(PREFIXES):
            key = key.split(".", 1)[1]
        clean[key] = value
    return clean


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside the wrappers this project adds: torch.nn.parallel's (`.module`) and torch.compile's
    (`._orig_mod`). Only these, by type: a model of its own with a `module` attribute is the whole model."""
    dynamo = sys.modules.get("torch._dynamo.eval_frame")  # imported by torch.compile; importing it costs seconds
    compiled = dynamo.OptimizedModule if dynamo else ()
    while True:
        if type(model).__module__.startswith("torch.nn.parallel."):
            model = model.module
        elif isinstance(model, compiled):
            model = model._orig_mod
        else:
            return model


def load_model_weights(model: nn.Module, state: dict, path="checkpoint", averaged: bool = True) -> None:
    """Load the checkpoint's weights into `model`: the EMA's (`model_ema`, trainer.ema_decay) where it has them
    and `averaged`, as inference wants, else the trained ones (`model`, for resuming). A checkpoint of another
    model gets a clear error."""
    saved_name = state.get("config", {}).get("model", {}).get("name")
    model = unwrap_model(model)
    own = model.state_dict()
    weights = strip_prefixes(state["model_ema" if averaged and "model_ema" in state else "model"], own)
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    mismatched = [k for k in own if k in weights and own[k].shape != weights[k].shape]
    if missing or unexpected or mismatched:
        details = []
        if mismatched:
            k = mismatched[0]
            details.append(f"{len(mismatched)} shape mismatches (e.g. {k}: {tuple(weights[k].shape)} saved, ")
            details[-1] += f"{tuple(own[k].shape)} here)"
        if missing:
            details.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise CheckpointError(
            f"{path} does not fit this model: it was saved from model {saved_name!r} "
            f"({type(model).__name__} here): " + "; ".join(details) + ". Check model.* and data.* settings."
        )
    model.load_state_dict(weights)


def read_weights_file(path) -> tuple[dict, list | None]:
    """`model.weights`: (its state dict, the names of the outputs it was trained for, None for a bare state dict)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"model.weights={path}: no such file") from None
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"model.weights={path} is not a state dict that loads safely ({reason})") from None
    info = state.get("data_info") if isinstance(state, dict) else None
    names = output_names(info) if isinstance(info, dict) else None
    for key in ("model_ema", "model", "state_dict"):  # our checkpoints (the EMA's weights first); Lightning's
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"model.weights={path} holds no state dict (names -> tensors)")
    return state, names


def fit_head(weights: dict, head: list[str], saved: list | None, wanted: list, reset: str, own: dict) -> str:
    """Keep, remap or reset (to zeros of the `own` shapes) the `head`'s tensors of `weights` in place, by the names
    of the outputs they were trained for (`saved`: task.py's OUTPUTS) and the data's (`wanted`), per
    `model.reset_head`; the log's reason."""
    names = None if saved is None else [str(name) for name in saved]
    wanted = [str(name) for name in wanted]
    if reset == "false" or (reset == "auto" and names == wanted):
        why = f"the same {OUTPUTS}" if names == wanted else "model.reset_head=false"
        return f"its head is kept where its shape fits ({why})"
    if reset == "auto" and names is None:
        return (
            f"it does not name its {OUTPUTS}, so they cannot be checked against the data's: its head is kept where "
            "its shape fits (model.reset_head=true starts from a fresh one)"
        )
    if reset == "auto" and sorted(names) == sorted(wanted):
        order = [names.index(name) for name in wanted]
        for key in head:
            weights[key] = weights[key][order]
        return f"the same {OUTPUTS} in another order: the rows of its head are remapped to the data's order"
    for key in head:  # a fresh head at zero, as BiT fine-tunes: the first step's gradients leave the
        weights[key] = torch.zeros_like(own[key])  # pretrained layers as they are
    if reset == "true":
        return "model.reset_head=true: its head is replaced by a fresh one at zero"
    return (
        f"its {OUTPUTS} {names[:6]} differ from the data's {wanted[:6]}: its head is replaced by a fresh one at "
        "zero (model.reset_head=false keeps it)"
    )


def load_weights_file(model: nn.Module, path, head=(), names=(), reset_head: str = "auto") -> None:
    """`model.weights`: a state dict, or a checkpoint of this project, loaded by name after stripping prefixes.

    The `head` (its tensors' names) is kept, remapped or reset by the names of the file's outputs and the
    data's `names` (`fit_head`). Tensors of another shape are left out and keep their fresh init.
    """
    state, saved = read_weights_file(path)
    own = model.state_dict()
    weights = strip_prefixes(state, own)
    reason = fit_head(weights, [key for key in head if key in weights and key in own], saved, names, reset_head, own)
    fits = {key: value for key, value in weights.items() if key in own and own[key].shape == value.shape}
    if not fits:
        raise CheckpointError(
            f"model.weights={path}: none of its {len(weights)} tensors fits {type(model).__name__} (by name and "
            f"shape; e.g. {next(iter(weights))!r}, here {next(iter(own))!r}); is it a {path} of another model?"
        )
    model.load_state_dict(fits, strict=False)
    reshaped = [key for key in weights if key in own and key not in fits]
    unchecked = saved is None and reset_head == "auto" and any(key in fits for key in head)  # kept blind: warn
    counts = f"loaded {len(fits)} of the model's {len(own)} tensors; left out {len(reshaped)} of another shape "
    counts += f"{reshaped[:4]} and {len(set(weights) - set(own))} not in the model"
    log.log(logging.WARNING if unchecked else logging.INFO, "model.weights=%s: %s; %s", path, reason, counts)


def new_run_dir(cfg, restart: bool = False) -> Path:
    """A fresh run dir; an existing one is never reused, so nothing in it can be overwritten. With
    `restart` (--resume auto) a run dir that holds no checkpoint yet is started again."""
    output_dir = Path(cfg.output_dir)
    if cfg.run_name:
        run_dir = output_dir / cfg.run_name
        if restart and run_dir.exists() and not any((run_dir / "checkpoints").glob("*.pt")):
            log.warning("%s holds no checkpoint yet (it stopped in its first epoch): starting it again", run_dir)
            return run_dir
        if run_dir.exists():
            raise ConfigError(
                f"run directory {run_dir} already exists; pick another run_name=..., "
                f"or continue it with --resume {run_dir}"
            )
        return run_dir
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = output_dir / stamp
    n = 1
    while run_dir.exists():
        run_dir = output_dir / f"{stamp}-{n}"
        n += 1
    return run_dir


def load_run(config_path, resume, overrides):
    """train.py's --config/--resume/overrides -> (cfg, checkpoint state, checkpoint path); a new run:
    (cfg, None, None). `--resume auto` continues <output_dir>/<run_name> when it has a last.pt, else
    starts it: a job that is requeued can run the same command every time."""
    if resume == "auto":
        cfg = load_config(config_path, overrides)
        if not cfg.run_name:
            raise ConfigError("--resume auto needs run_name=...: the run to continue (or to start when new)")
        last = Path(cfg.output_dir) / cfg.run_name / "checkpoints" / "last.pt"
        if not last.is_file():
            return cfg, None, None
        log.info("--resume auto: continuing %s", last)
        config_path = None  # the run's own config, with this command's overrides
        resume = last
    if not resume:
        return load_config(config_path, overrides), None, None
    if config_path:
        raise ConfigError("--resume uses the run's own config; pass changes as key=value overrides instead")
    ckpt_path = resolve_checkpoint_path(resume)
    if ckpt_path.parent.name != "checkpoints":
        raise ConfigError(
            f"--resume {resume}: expected a run dir or <run_dir>/checkpoints/*.pt, "
            "so the run continues in its own folder"
        )
    state = load_checkpoint(ckpt_path)
    return load_config(base=state["config"], overrides=overrides), state, ckpt_path
