"""Stopping a run cleanly when a scheduler asks (SLURM, Kubernetes, spot instances), and resuming it.

SIGTERM, SIGUSR1 or SIGINT ask the run to stop: it finishes the optimizer step it is in (never stopping
inside an accumulation group), writes last.pt with its position in the epoch, logs the command that
continues it and exits with EXIT_RESUMABLE. A second SIGINT stops at once (KeyboardInterrupt), as Ctrl-C
always did. `trainer.checkpoint_every_steps` / `trainer.checkpoint_every_minutes` write last.pt mid-epoch
too, so a run killed without warning (kill -9, a lost node) loses at most that much. `fault_advice` turns the
faults a long run meets (a data-loading worker killed, out of memory) into one paragraph with what to change.
"""

import logging
import signal
import threading
import time

log = logging.getLogger(__name__)
__all__ = [
    "EXIT_RESUMABLE",
    "RunStopped",
    "StopRequest",
    "continued_progress",
    "epoch_layout",
    "fault_advice",
    "fit_or_stop",
]

EXIT_RESUMABLE = 75  # EX_TEMPFAIL: stopped on request with a checkpoint; run the resume command to continue
SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")


class RunStopped(Exception):
    """Raised out of `Trainer.fit` after the checkpoint of a requested stop is written."""


class StopRequest:
    """`with StopRequest() as stop:` the signals set `stop.signal_name` instead of ending the process; the
    handlers from before come back on exit. `due(steps)`: whether a mid-epoch checkpoint is due."""

    def __init__(self, every_steps: int = 0, every_minutes: float = 0.0):
        self.every_steps = every_steps
        self.every_seconds = every_minutes * 60
        self.signal_name = None
        self.saved_at = time.monotonic()
        self.previous = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for name in SIGNALS:
                if hasattr(signal, name):
                    self.previous[name] = signal.signal(getattr(signal, name), self.handle)
        return self

    def __exit__(self, *exc) -> None:
        for name, handler in self.previous.items():
            signal.signal(getattr(signal, name), handler)

    def handle(self, number, frame) -> None:
        name = signal.Signals(number).name
        if name == "SIGINT" and self.signal_name == "SIGINT":
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self.signal_name = name
        log.warning("%s received: stopping after this optimizer step, with a checkpoint", name)

    def due(self, steps: int) -> bool:
        """A mid-epoch checkpoint is due (every_steps optimizer steps, or every_minutes since the last one)."""
        by_steps = self.every_steps and steps % self.every_steps == 0
        return bool(by_steps) or bool(self.every_seconds and time.monotonic() - self.saved_at >= self.every_seconds)

    def saved(self) -> None:
        self.saved_at = time.monotonic()


def epoch_layout(cfg, **more) -> dict:
    """What fixes an epoch's batches: a mid-epoch checkpoint continues inside the epoch only under the same."""
    data = cfg.data
    return {
        "data.batch_size": data.batch_size,
        "trainer.accumulate_steps": cfg.trainer.accumulate_steps,
        "data.preload": data.preload,
        "data.balanced_sampler": data.balanced_sampler,
        **more,
    }


def continued_progress(progress: dict | None, layout: dict) -> dict | None:
    """A mid-epoch checkpoint's position, when this run batches the epoch as the stopped one did. Otherwise (a
    smaller data.batch_size after running out of memory, ...) the epoch starts again, from the weights it reached."""
    if progress is None or progress.get("layout", layout) == layout:
        return progress
    before = progress["layout"]
    epoch = progress["epoch"] + 1
    changed = {key: (before.get(key), value) for key, value in layout.items() if before.get(key) != value}
    log.warning("last.pt stopped inside epoch %d; %s (then, now) change its batches: it starts again.", epoch, changed)
    return None


def fault_advice(error: BaseException, cfg, run_dir) -> str | None:
    """One paragraph for a fault a long run meets, or None for any other error."""
    resume = f"The last checkpoint is intact; continue with: python train.py --resume {run_dir}"
    text = str(error).strip()
    data = cfg.data
    if isinstance(error, RuntimeError) and "DataLoader worker" in text:  # killed, usually by the OOM killer
        return (
            f"A data-loading worker process died ({text.splitlines()[0]}). The usual cause is memory: the system's "
            f"OOM killer ends the largest process. Use fewer workers (data.num_workers={data.num_workers} now), "
            f"smaller batches (data.batch_size={data.batch_size}) or no preloading (data.preload={data.preload}), "
            f"or free memory on the machine. {resume}"
        )
    if isinstance(error, RuntimeError) and "out of memory" in text:  # the accelerator's memory
        batch = data.batch_size
        steps = cfg.trainer.accumulate_steps
        change = "It is 1 already"
        if batch != 1:
            change = (
                f"Halve it and keep the effective batch with gradient accumulation: data.batch_size={batch // 2} "
                f"trainer.accumulate_steps={steps * 2}"
            )
        also = "a smaller model or input size also helps"
        return f"Out of memory at data.batch_size={batch} ({text.splitlines()[0]}). {change}; {also}. {resume}"
    return None


def fit_or_stop(trainer, cfg, run_dir) -> int | None:
    """`trainer.fit()`; an exit code when the run ends early: stopped on request (EXIT_RESUMABLE, last.pt holds the
    position in the epoch), a second Ctrl-C (130), or a fault `fault_advice` explains (1)."""
    try:
        trainer.fit()
    except (RunStopped, KeyboardInterrupt) as stop:
        log.warning("%s. Continue with: python train.py --resume %s", str(stop) or "Interrupted", run_dir)
        return EXIT_RESUMABLE if isinstance(stop, RunStopped) else 130
    except RuntimeError as err:
        if (advice := fault_advice(err, cfg, run_dir)) is None:
            raise
        log.error(advice)
        return 1
    return None
