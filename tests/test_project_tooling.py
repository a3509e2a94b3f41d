"""The generated project's tooling: GitHub Actions workflow, pre-commit config, Makefile.

Each answer set is rendered once (module-scoped fixture); the checks read the rendered
files, lint the workflow with actionlint, and run `make` in the project.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from helpers import TEMPLATE_DIR, explain, render
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ANSWERS = {
    "torchvision": {"project_name": "ci demo", "dataset_type": "torchvision", "gpu": "none"},
    "image_folder": {
        "project_name": "Tool Check",
        "package_name": "tool_check_pkg",
        "dataset_type": "image_folder",
        "gpu": "single",
        "use_prefetch": False,
    },
    "tabular_csv": {
        "project_name": "Table Tools",
        "dataset_type": "tabular_csv",
        "gpu": "none",
        "license": "none",
        "experiment_tracker": "tensorboard",
    },
}
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"
SMOKE_TRAIN = "python train.py trainer.epochs=1 trainer.device=cpu run_name=ci-smoke"
CACHES = {"__pycache__", ".pytest_cache", ".ruff_cache"}


class Rendered:
    def __init__(self, answers, root):
        self.answers = answers
        self.root = root
        self.package = answers.get("package_name", root.name.replace("-", "_"))
        self.files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file() and not CACHES & set(p.relative_to(root).parts)
        )

    @property
    def workflow_path(self):
        return self.root / ".github" / "workflows" / "ci.yml"

    def pyproject(self):
        with open(self.root / "pyproject.toml", "rb") as f:
            return tomllib.load(f)

    def dev_requirements(self):
        reqs = [
            Requirement(r) for r in self.pyproject()["project"]["optional-dependencies"]["dev"]
        ]
        return {req.name: req for req in reqs}


@pytest.fixture(scope="module", params=sorted(ANSWERS))
def project(request, tmp_path_factory):
    answers = ANSWERS[request.param]
    return Rendered(answers, render(tmp_path_factory.mktemp(request.param), **answers))


def workflow_steps(project):
    workflow = yaml.safe_load(project.workflow_path.read_text(encoding="utf-8"))
    assert set(workflow["jobs"]) == {"test"}, workflow["jobs"].keys()
    return workflow, workflow["jobs"]["test"]["steps"]


def run_lines(steps):
    """Every command line of every `run:` step, in order."""
    return [
        line.strip() for step in steps for line in step.get("run", "").splitlines() if line.strip()
    ]


def find_actionlint():
    for candidate in (
        os.environ.get("ACTIONLINT"),
        shutil.which("actionlint"),
        shutil.which("actionlint", path=os.path.dirname(sys.executable)),  # pip's bin dir
    ):
        if candidate:
            return candidate
    return None


def make_env():
    """This interpreter's bin dir first on PATH, so the Makefile's `python` has ruff and pytest."""
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("PYTEST_ADDOPTS", None)
    return env


def make(*args, cwd):
    if shutil.which("make") is None:
        pytest.skip("needs make")
    return subprocess.run(
        ["make", *args], cwd=cwd, env=make_env(), capture_output=True, text=True, timeout=120
    )


# --- GitHub Actions workflow ---------------------------------------------------------


def test_workflow_triggers_runner_and_actions(project):
    workflow, steps = workflow_steps(project)
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    job = workflow["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest"

    uses = {step["uses"].split("@")[0]: step for step in steps if "uses" in step}
    assert uses["actions/checkout"]["uses"] == "actions/checkout@v5"
    setup = uses["actions/setup-python"]
    assert setup["uses"] == "actions/setup-python@v6"
    assert setup["with"]["python-version"] == "3.11"  # a string: 3.10 as a float would be 3.1
    assert setup["with"]["cache"] == "pip"


def test_workflow_installs_lints_tests_and_smoke_trains(project):
    _, steps = workflow_steps(project)
    lines = run_lines(steps)
    image = project.answers["dataset_type"] != "tabular_csv"
    torch = "torch torchvision" if image else "torch"
    gpu = project.answers.get("gpu", "single") != "none"
    # TensorBoard, when chosen, is a dependency. Tests use export; GPU image ones gpu-decode too.
    extras = "dev,export,gpu-decode" if image and gpu else "dev,export"
    expected = [
        f"pip install {torch} {CPU_INDEX}",
        f'pip install -e ".[{extras}]"',
        "ruff check .",
        "ruff format --check .",
    ]
    pytest_line = next(line for line in lines if line.startswith("python -m pytest"))
    if "-n" in pytest_line.split():
        assert "pytest-xdist" in project.dev_requirements(), (
            "pytest -n needs pytest-xdist in the dev extra"
        )
    expected.append(pytest_line)
    if project.answers["dataset_type"] == "torchvision":
        # Offline: MNIST's own file format written by the project, then no download.
        expected.append(f"python -m {project.package}.data.sample data/mnist --name MNIST")
        train = f"{SMOKE_TRAIN} data.root=data/mnist data.download=false"
    else:
        train = SMOKE_TRAIN
        assert not any("data.download" in line or ".data.sample" in line for line in lines)
    expected.append(train)
    # In this order, each exactly once (the smoke train is last).
    assert [line for line in lines if line in expected] == expected, lines
    assert lines[-1] == train


def test_smoke_train_overrides_exist_in_the_config(project):
    """Each key=value of the smoke train names a key of configs/default.yaml."""
    _, steps = workflow_steps(project)
    train = next(line for line in run_lines(steps) if line.startswith("python train.py"))
    config = yaml.safe_load(
        (project.root / "configs" / "default.yaml").read_text(encoding="utf-8")
    )
    for override in train.split()[2:]:
        key = override.split("=", 1)[0]
        node = config
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{key} is not in configs/default.yaml"
            node = node[part]


def test_workflow_keeps_github_expressions(project):
    text = project.workflow_path.read_text(encoding="utf-8")
    # GitHub's `${{ ... }}` came through Jinja untouched, and no Jinja is left.
    assert "${{ github.workflow }}" in text
    assert text.count("${{") == text.count("}}") == 2
    for marker in ("{%", "%}", "{#", "#}", "cookiecutter"):
        assert marker not in text
    if project.answers["dataset_type"] == "torchvision":
        assert f"python -m {project.package}.data.sample" in text


def test_workflow_passes_actionlint(project):
    actionlint = find_actionlint()
    if actionlint is None:
        pytest.skip("needs actionlint on PATH or ACTIONLINT=/path/to/actionlint")
    proc = subprocess.run(
        [actionlint, "-no-color", ".github/workflows/ci.yml"],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, explain(proc)


# --- pre-commit ----------------------------------------------------------------------


def ruff_of_template_tests():
    """The ruff the template's own tests lint rendered projects with (requirements-test.txt)."""
    text = (TEMPLATE_DIR / "requirements-test.txt").read_text(encoding="utf-8")
    match = re.search(r"^ruff==(\S+)", text, re.MULTILINE)
    assert match, "requirements-test.txt should pin ruff"
    return match.group(1)


def test_pre_commit_config(project):
    config = yaml.safe_load((project.root / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    repos = {repo["repo"]: repo for repo in config["repos"]}

    basics = repos["https://github.com/pre-commit/pre-commit-hooks"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", basics["rev"])
    assert {hook["id"] for hook in basics["hooks"]} >= {
        "end-of-file-fixer",
        "trailing-whitespace",
        "check-yaml",
        "check-added-large-files",
    }

    ruff = repos["https://github.com/astral-sh/ruff-pre-commit"]
    hooks = {hook["id"]: hook for hook in ruff["hooks"]}
    assert set(hooks) == {"ruff-check", "ruff-format"}
    assert "--fix" in hooks["ruff-check"]["args"]

    # One ruff everywhere: the hook's rev, the project's dev extra, the template's tests.
    rev = ruff["rev"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", rev), rev
    version = rev[1:]
    dev_ruff = project.dev_requirements()["ruff"]
    assert dev_ruff.specifier.contains(version), f"{rev} is outside the dev extra's {dev_ruff}"
    pins = [spec.version for spec in dev_ruff.specifier if spec.operator == "=="]
    if pins:
        assert pins == [version], f"pre-commit runs ruff {rev}, the dev extra pins {dev_ruff}"
    assert version == ruff_of_template_tests()


def test_fresh_render_is_clean_for_the_pre_commit_hooks(project):
    """`pre-commit run --all-files` right after rendering would change nothing."""
    for path in project.files:
        rel = path.relative_to(project.root).as_posix()
        data = path.read_bytes()
        assert len(data) < 500 * 1024, f"{rel}: check-added-large-files would refuse it"
        text = data.decode("utf-8")
        if text:  # end-of-file-fixer: exactly one final newline
            assert text.endswith("\n") and not text.endswith("\n\n"), f"{rel}: end of file"
        for number, line in enumerate(text.splitlines(), 1):
            assert line == line.rstrip(), f"{rel}:{number}: trailing whitespace"
        if path.suffix in {".yml", ".yaml"}:
            yaml.safe_load(text)  # check-yaml


# --- Makefile ------------------------------------------------------------------------


def test_makefile_recipes_dry_run(project):
    makefile = (project.root / "Makefile").read_text(encoding="utf-8")
    assert not re.search(r"^ +\S", makefile, re.MULTILINE), "recipes must be indented with tabs"
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.MULTILINE).group(1).split()
    assert set(phony) >= {"help", "install", "train", "test", "lint", "format"}

    proc = make("-n", "install", "train", "test", "lint", cwd=project.root)
    assert proc.returncode == 0, explain(proc)
    assert [line.strip() for line in proc.stdout.splitlines()] == [
        'python -m pip install -e ".[dev,export]"',
        "python train.py",
        "python -m pytest",
        "python -m ruff check .",
        "python -m ruff format --check .",
    ]
    proc = make(
        "-n", "train", "ARGS=trainer.epochs=1 run_name=x", "PYTHON=python3", cwd=project.root
    )
    assert proc.stdout.strip() == "python3 train.py trainer.epochs=1 run_name=x", explain(proc)


def test_make_alone_lists_the_targets(project):
    proc = make(cwd=project.root)
    assert proc.returncode == 0, explain(proc)
    listed = [
        line.split()[1] for line in proc.stdout.splitlines() if line.strip().startswith("make ")
    ]
    assert listed == ["help", "install", "train", "test", "lint", "format"], proc.stdout


def test_make_lint_passes_on_a_fresh_render(project):
    proc = make("lint", cwd=project.root)
    assert proc.returncode == 0, explain(proc)


# --- use_github_actions ----------------------------------------------------------------


def test_no_github_folder_without_github_actions(tmp_path):
    root = render(tmp_path, project_name="No Actions", use_github_actions=False)
    # The other tooling does not depend on the answer.
    assert (root / "Makefile").is_file()
    assert (root / ".pre-commit-config.yaml").is_file()
    # Depends on hooks/post_gen_project.py removing .github when use_github_actions is false.
    assert not (root / ".github").exists()


def test_github_folder_with_github_actions(tmp_path):
    root = render(tmp_path, project_name="With Actions", use_github_actions=True)
    assert sorted(
        p.relative_to(root).as_posix() for p in (root / ".github").rglob("*") if p.is_file()
    ) == [".github/workflows/ci.yml"]
