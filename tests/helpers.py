"""Helpers for the template tests: render the template, run commands in a project."""

import json
import os
import subprocess
import sys
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
COOKIECUTTER_JSON = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8"))


def render(out, **answers):
    """Render the template without prompts; return the project directory."""
    path = cookiecutter(str(TEMPLATE_DIR), no_input=True, extra_context=answers, output_dir=out)
    return Path(path)


def run(args, cwd, timeout=600):
    """Run a command in a subprocess and return it (never raises on failure)."""
    env = dict(os.environ)
    # Two xdist workers each training with every core would fight for them.
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def python(*args, cwd, timeout=600):
    """Run `python ARGS...` with this interpreter (the one that has torch)."""
    return run([sys.executable, *args], cwd=cwd, timeout=timeout)


def explain(proc):
    """Failure message that shows what a subprocess printed."""
    return (
        f"`{' '.join(map(str, proc.args))}` exited {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
    )
