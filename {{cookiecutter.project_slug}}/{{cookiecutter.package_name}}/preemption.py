"""Stopping a run cleanly when a scheduler asks (SLURM, Kubernetes, spot instances), and resuming it.

SIGTERM, SIGUSR1 or SIGINT ask the run to stop: it finishes the optimizer step it is in (never stopping
inside an accumulation group), writes last.pt with its position in the epoch, logs the command that
continues it and exits with EXIT_RESUMABLE. A second SIGINT stops at once (KeyboardInterrupt), as Ctrl-C
always did. `trainer.checkpoint_every_steps` / `trainer.checkpoint_every_minutes` write last.pt mid-epoch
too, so a run killed without warning (kill -9, a lost node) loses at most that much.
"""

import logging
import signal
import threading
import time

log = logging.getLogger(__name__)
__all__ = ["EXIT_RESUMABLE", "RunStopped", "StopRequest"]

EXIT_RESUMABLE = 75  # EX_TEMPFAIL: stopped on request with a checkpoint; run the resume command to continue
SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")


class RunStopped(Exception):
    """Raised out of `Trainer.fit` after the checkpoint of a requested stop is written."""


class StopRequest:
    """`with StopRequest() as stop:` the signals set `stop.signal_name` instead of ending the process; the
    handlers from before come back on exit. `due(steps)`: whether a mid-epoch checkpoint is due."""

    def __init__(self, every_steps: int = 0, every_minutes: float = 0.0):
        self.every_steps, self.every_seconds = every_steps, every_minutes * 60
        self.signal_name, self.saved_at, self.previous = None, time.monotonic(), {}

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
