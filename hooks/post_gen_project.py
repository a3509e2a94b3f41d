"""Keep the files the answers chose, apply the marker lines, print the next steps.

The variant files are listed in ONE table, `_files` in cookiecutter.json (the template
tests read the same table to know what each render must contain):

    "PKG/engine_cuda.py": {"when": {"gpu": "single"}, "as": "PKG/engine.py"}

Paths are relative to the project root; `PKG/` stands for the package folder. A path
is kept when every answer named in `when` has the given value (or one of the listed
values), renamed to `as` if given, and deleted otherwise (a folder with all it holds).
Files the table does not name are always kept.

Marker lines: in every text file, a line ending in `  # use_prefetch` (a name in the
`_markers` table of cookiecutter.json) is kept without the marker when that row's `when`
holds, and deleted otherwise. They are for optional features whose only footprint in a
shared file is an import and a line or two.

Answers reach this file through `|tojson` only, as data, never as code.
"""

import json
import re
import shutil
from pathlib import Path

# JSON true/false are not Python, so the context is parsed from its JSON text.
CONTEXT = json.loads({{ cookiecutter|tojson|tojson }})
PACKAGE = CONTEXT["package_name"]
SLUG = CONTEXT["project_slug"]
FILES = CONTEXT["_files"]
MARKERS = CONTEXT["_markers"]
INSTALL = 'python -m pip install -e ".[dev,export]"'  # the same command as both READMEs
CACHES = ["__pycache__", ".pytest_cache", ".ruff_cache"]


def chosen(when):
    """True when every answer named in `when` has its value, or one of its listed values."""
    return all(
        CONTEXT[key] in (value if isinstance(value, list) else [value])
        for key, value in when.items()
    )


def local(path):
    """Table path -> path in the project ("PKG/..." is the package folder)."""
    first, _, rest = path.partition("/")
    return Path(PACKAGE if first == "PKG" else first, rest)


def prune():
    """Delete what the answers did not choose, then rename the chosen variants."""
    renames = []
    for name, row in FILES.items():
        path = local(name)
        if chosen(row["when"]):
            renames.append((path, local(row.get("as", name))))
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for source, target in renames:
        if source == target or not source.exists():
            continue
        if target.exists():
            raise SystemExit(f"ERROR: template bug: both {source} and {target} were chosen.")
        source.rename(target)


def apply_markers():
    """Marked lines: keep them (without the marker) for a yes, delete them for a no."""
    keep = {name: chosen(when) for name, when in MARKERS.items()}
    names = "|".join(map(re.escape, keep))
    marker = re.compile(r"^(?P<code>.*\S)[ \t]{2,}# (?P<flag>" + names + r")[ \t]*$")
    for path in sorted(Path(".").rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        try:
            text = path.read_bytes().decode("utf-8")  # line endings as they are
        except UnicodeDecodeError:
            continue  # not text
        lines = []
        for line in text.splitlines(keepends=True):
            body = line.rstrip("\r\n")
            match = marker.match(body)
            if match is None:
                lines.append(line)
            elif keep[match["flag"]]:
                lines.append(match["code"] + line[len(body) :])
        new = "".join(lines)
        if new != text:
            path.write_bytes(new.encode("utf-8"))


def main() -> None:
    # Tool caches from working on the template itself are no part of a project.
    for name in CACHES:
        for cache in list(Path(".").rglob(name)):
            shutil.rmtree(cache, ignore_errors=True)
    prune()
    apply_markers()
    print(
        f"\nCreated {SLUG}. Next:\n"
        f"  cd {SLUG}\n"
        f"  {INSTALL}\n"
        "  python train.py              # trains on a generated sample dataset\n"
        "  python -m pytest             # the project's own tests\n"
    )


if __name__ == "__main__":
    main()
