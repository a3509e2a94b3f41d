"""Helpers for the template tests: render the template, run commands in a project, and
read the variant table (`_files` in cookiecutter.json) that the post-gen hook applies."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from cookiecutter.main import cookiecutter

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

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


def run(args, cwd, timeout=600, env=None):
    """Run a command in a subprocess and return it (never raises on failure).
    `env`: variables to set on top of this process's environment."""
    env = {**os.environ, **(env or {})}
    # Two xdist workers each training with every core would fight for them.
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def python(*args, cwd, timeout=600, env=None):
    """Run `python ARGS...` with this interpreter (the one that has torch)."""
    return run([sys.executable, *args], cwd=cwd, timeout=timeout, env=env)


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


# --- the README's install ------------------------------------------------------------------

README_EXTRAS = ("dev", "export")  # `python -m pip install -e ".[dev,export]"`
# A sitecustomize.py on PYTHONPATH runs at the start of every Python the project's suite starts
# (pytest, train.py subprocesses, torchrun workers): `import NAME` of a blocked top-level name
# fails as if the package were not installed.
BLOCKER = """import sys
from importlib.machinery import PathFinder

BLOCKED = frozenset({blocked!r})


class NotInstalled(PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            return None  # not found: `import` fails, importlib.util.find_spec gives None
        return super().find_spec(name, path, target)


sys.meta_path[:] = [NotInstalled if finder is PathFinder else finder for finder in sys.meta_path]
"""


def requirement_closure(requirements):
    """Normalised names of the installed distributions these requirements pull in, recursively."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen, todo = set(), [(Requirement(r), "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()
        name = canonicalize_name(requirement.name)
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for wanted in [""] + sorted(requirement.extras):
            key = (name, wanted)
            if key not in seen:
                seen.add(key)
                todo += [(Requirement(r), wanted) for r in dist.requires or []]
    return {name for name, _ in seen}


def not_in_readme_install(root):
    """Top-level import names installed here that `pip install -e ".[dev,export]"` of the project
    at `root` would not install: the other extras, and whatever else this environment holds.
    pytest plugins stay importable (pytest loads every installed one)."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    with open(Path(root) / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    wanted = project["dependencies"] + [
        r for extra in README_EXTRAS for r in project["optional-dependencies"][extra]
    ]
    kept = requirement_closure(wanted) | {
        canonicalize_name(e.dist.name) for e in metadata.entry_points(group="pytest11")
    }
    blocked = set()
    for module, dists in metadata.packages_distributions().items():
        if module.isidentifier() and not {canonicalize_name(d) for d in dists} & kept:
            blocked.add(module)
    return sorted(blocked - set(sys.stdlib_module_names) - {"_distutils_hack", "pip"})


def readme_install_env(root, folder):
    """Environment variables under which a Python sees only what the README's install gives."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        BLOCKER.format(blocked=not_in_readme_install(root)), encoding="utf-8"
    )
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    }
