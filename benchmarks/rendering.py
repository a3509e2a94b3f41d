"""Shared by the benchmarks: render an image_folder project from this template, quietly."""

import contextlib
import os
import sys
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def quiet_stdout():
    """Silence fd 1 (the post-gen hook runs as a subprocess and prints "Created ... Next:")."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def render_image_folder_project(out: Path, project_name: str, **answers) -> Path:
    """Render into `out` (gpu=single, the answers given); return the project folder."""
    context = {
        "project_name": project_name,
        "dataset_type": "image_folder",
        "gpu": "single",
        **answers,
    }
    with quiet_stdout():
        return Path(
            cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(out), extra_context=context)
        )
