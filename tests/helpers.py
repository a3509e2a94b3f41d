"""Helpers for the template tests: render the template, run commands in a project, and
read the variant table (`_files` in cookiecutter.json) that the post-gen hook applies."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
TEMPLATE_PROJECT = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
PACKAGE_DIR = "{{cookiecutter.package_name}}"
COOKIECUTTER_JSON = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8"))
# Template path ("PKG/..." is the package folder) -> {"when": {answer: value(s)}, "as": path}.
FILES_TABLE = COOKIECUTTER_JSON["_files"]
CACHES = {"__pycache__", ".pytest_cache", ".ruff_cache"}


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


# --- the variant table -----------------------------------------------------------------


def default_answers():
    """The answers `--no-input` gives (choices: the first one)."""
    return {
        key: value[0] if isinstance(value, list) else value
        for key, value in COOKIECUTTER_JSON.items()
        if not key.startswith("_")
    }


def chosen(when, answers):
    """A table row's condition: every answer named has its value, or one of its values."""
    return all(
        answers[key] in (value if isinstance(value, list) else [value])
        for key, value in when.items()
    )


def template_files(template=TEMPLATE_PROJECT):
    """Every file of the template's project folder, as table paths (package folder: PKG)."""
    files = set()
    for path in template.rglob("*"):
        rel = path.relative_to(template)
        if path.is_file() and not CACHES & set(rel.parts):
            parts = ["PKG" if part == PACKAGE_DIR else part for part in rel.parts]
            files.add("/".join(parts))
    return files


def table_row(path):
    """The table entry that governs a template file: its own, or a folder's above it."""
    parts = path.split("/")
    for end in range(len(parts), 0, -1):
        name = "/".join(parts[:end])
        if name in FILES_TABLE:
            return name, FILES_TABLE[name]
    return None, None


def expected_files(answers, package, template=TEMPLATE_PROJECT):
    """What a render with these answers holds: the template's files, with the table applied."""
    answers = {**default_answers(), **answers}
    files = set()
    for path in template_files(template):
        name, row = table_row(path)
        if row is not None:
            if not chosen(row["when"], answers):
                continue
            path = row.get("as", name) + path[len(name) :]
        first, _, rest = path.partition("/")
        files.add(f"{package}/{rest}" if first == "PKG" else path)
    return files


# --- shape figures of a render -----------------------------------------------------------


def python_sources(root):
    """Line count (as `wc -l` counts) of each .py file of a render outside tests/."""
    counts = {}
    for path in sorted(Path(root).rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in {"tests", "runs", "data"} or CACHES & set(rel.parts):
            continue
        counts[rel.as_posix()] = path.read_bytes().count(b"\n")
    return counts


def python_lines(root):
    """Python lines of a render outside tests/ (the issue's measure: `wc -l`)."""
    return sum(python_sources(root).values())


def largest_function(root):
    """(lines, "file:function") of the longest function or method outside tests/."""
    largest = (0, "")
    for rel in python_sources(root):
        tree = ast.parse((Path(root) / rel).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                largest = max(largest, (length, f"{rel}:{node.name}"))
    return largest
