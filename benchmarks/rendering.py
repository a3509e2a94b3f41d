"""Shared by the benchmarks: render a project from this template, import it, run its training call.

The generated package's Python API is reached through `import_project` (which finds each piece
under the current layout or the previous one) and `fit_generated` (the project's documented
training call). Those two are the only places that know the package's layout.
"""

import contextlib
import importlib
import logging
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def quiet_fds(*fds: int):
    """Point file descriptors (default: stdout) at os.devnull: also silences subprocesses (the
    post-gen hook prints "Created ... Next:") and handlers that captured sys.stdout/err earlier."""
    fds = fds or (1,)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    try:
        with open(os.devnull, "w") as sink:
            for fd in fds:
                os.dup2(sink.fileno(), fd)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
    finally:
        for fd, copy in zip(fds, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


quiet_stdout = quiet_fds  # the name the benchmarks used first


def render_image_folder_project(
    out: Path, project_name: str, template: Path | None = None, **answers
) -> Path:
    """Render into `out` (image_folder, gpu=single unless answered); return the project folder."""
    context = {
        "project_name": project_name,
        "dataset_type": "image_folder",
        "gpu": "single",
        **answers,
    }
    with quiet_fds(1):
        return Path(
            cookiecutter(
                str(template or TEMPLATE),
                no_input=True,
                output_dir=str(out),
                extra_context=context,
            )
        )


def import_project(project: Path) -> SimpleNamespace:
    """The generated package's pieces the benchmarks use, as one namespace.

    `loop` is the module holding `Trainer`, `build_optimizer` and `build_scheduler`:
    `PKG.engine` (the redesigned layout) or `PKG.trainer` (the one before it); `api` says which.
    Helpers that moved between layouts are looked up in each candidate module in turn.
    """
    pkg = next(p.parent.name for p in sorted(project.glob("*/config.py")))
    sys.path.insert(0, str(project))

    def module(name: str):
        try:
            return importlib.import_module(f"{pkg}.{name}")
        except ModuleNotFoundError as err:
            if err.name and f"{pkg}.{name}".startswith(err.name):  # that module itself is absent
                return None
            raise

    def pick(attr: str, *names: str):
        for name in names:
            mod = module(name)
            if mod is not None and hasattr(mod, attr):
                return getattr(mod, attr)
        return None

    loop, api = module("engine"), "engine"
    if loop is None or not hasattr(loop, "Trainer"):
        loop, api = module("trainer"), "trainer"
    if loop is None:
        raise ImportError(f"{pkg} has neither engine.Trainer nor trainer.Trainer")
    return SimpleNamespace(
        pkg=pkg,
        api=api,
        loop=loop,
        config=module("config"),
        data=module("data"),
        models=module("models"),
        sample=module("data.sample"),
        utils=module("utils"),
        task=module("task"),  # None before the task prompt: cross entropy
        resolve_device=pick("resolve_device", "device", "utils.device", "utils"),
        seed_everything=pick("seed_everything", "utils", "utils.seeding", "seeding"),
        setup_logging=pick("setup_logging", "utils", "utils.logs", "logs"),
        position_seed=pick("position_seed", "data.resumable"),
    )


def force_progress_bars(m) -> None:
    """Bars on as on a terminal (the project shows them only when stderr is a tty); the config's
    trainer.progress_bar still decides. Patched where the loop looks the function up."""
    for mod in {m.loop, *(sys.modules[n] for n in sys.modules if n.startswith(f"{m.pkg}."))}:
        if getattr(mod, "show_progress", None) is not None:
            mod.show_progress = lambda enabled: enabled


def seed(m, value: int) -> None:
    if m.seed_everything is not None:
        m.seed_everything(value)
    else:
        torch.manual_seed(value)


def seed_epoch(m, cfg, loader, epoch: int) -> None:
    """The seeds the generated Trainer sets at the start of every epoch (its dropout, and the
    loader's shuffling and worker seeds), so every side trains on the same batches."""
    m.seed_everything(m.utils.derive_seed(cfg.seed, "step", epoch))
    loader.generator.manual_seed(m.utils.derive_seed(cfg.seed, "loader", epoch))


def seed_batch(m, cfg, epoch: int, batch: int) -> None:
    """The seed the generated Trainer sets before each train batch (dropout drawn per batch, so
    that a run resumed mid-epoch draws the same); older layouts seed per epoch only."""
    if m.position_seed is None:
        return
    base = m.utils.derive_seed(cfg.seed, "step", epoch)
    try:  # position_seed(base, position); before it, (base, rank, position)
        torch.manual_seed(m.position_seed(base, batch))
    except TypeError:
        torch.manual_seed(m.position_seed(base, 0, batch))


def start_logging(m, log_file: Path) -> None:
    """What train.py does first: console + file logging for the run."""
    if m.setup_logging is not None:
        m.setup_logging(log_file)


def close_logging(m) -> None:
    logger = logging.getLogger(m.pkg)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def fit_generated(m, cfg, model, loaders, run_dir: Path, device) -> list[dict]:
    """The generated project's training call, as its train.py makes it; returns the history.

    The one place that knows the Trainer's signature: switch it here when the API changes.
    """
    train_loader, val_loader, data_info = loaders
    if m.api == "engine":  # criterion, optimizer and scheduler built in plain sight
        model = model.to(device)
        if hasattr(m.loop, "prepare_model"):  # channels_last, compile: before the optimizer
            model = m.loop.prepare_model(model, cfg, torch.device(device))
        # The task's loss, as train.py builds it (before the task prompt: cross entropy).
        criterion = (
            m.task.build_criterion(cfg, data_info) if m.task else torch.nn.CrossEntropyLoss()
        )
        criterion = criterion.to(device)
        optimizer = m.loop.build_optimizer(cfg, model)
        scheduler = m.loop.build_scheduler(cfg, optimizer)
        trainer = m.loop.Trainer(
            cfg, model, criterion, optimizer, scheduler,
            train_loader, val_loader, data_info, run_dir, device,
        )  # fmt: skip
    else:  # the Trainer built the optimizer and scheduler itself
        trainer = m.loop.Trainer(cfg, model, train_loader, val_loader, data_info, run_dir, device)
    return trainer.fit()
