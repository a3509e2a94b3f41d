"""Rendering beyond the answer combinations: the CLI, any Unicode text, a wheel build,
one install command everywhere."""

import sys
import zipfile

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from helpers import TEMPLATE_DIR, explain, render, run

# The one install command: template README quick start, post-gen message, generated README.
INSTALL = 'python -m pip install -e ".[dev,export]"'


def test_cli_renders_tabular_cpu_project(tmp_path):
    proc = run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            str(TEMPLATE_DIR),
            "dataset_type=tabular_csv",
            "gpu=none",
            "-o",
            str(tmp_path),
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, explain(proc)
    # The default project_name follows the data: "Table Classifier" for a table, else "Image ...".
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table-classifier"]
    project = tmp_path / "table-classifier"
    assert (project / "README.md").read_text(encoding="utf-8").startswith("# Table Classifier\n")
    assert f"\n  {INSTALL}\n" in proc.stdout, "the post-gen message gives another install"
    assert (project / "train.py").is_file()
    assert (project / "table_classifier" / "models" / "mlp.py").is_file()
    assert not (project / "table_classifier" / "models" / "cnn.py").exists()


# task: (default project name, a line of its task.py, its sample's target column, its monitor)
TASK_RENDERS = {
    "regression": ("Table Regressor", "def decode(", '"price"', "val_rmse"),
    "multilabel": ("Table Tagger", 'TASK = "multilabel"', '"tags"', "val_map"),
}


@pytest.mark.parametrize("task", sorted(TASK_RENDERS))
def test_a_table_task_names_the_project_and_keeps_its_own_files(task, tmp_path):
    """The task names the default project and keeps its own task file and sample writer."""
    title, task_line, target, monitor = TASK_RENDERS[task]
    project = render(tmp_path, dataset_type="tabular_csv", task=task, gpu="none")
    package = project / title.lower().replace(" ", "_")
    assert project.name == title.lower().replace(" ", "-")
    assert (project / "README.md").read_text(encoding="utf-8").startswith(f"# {title}\n")
    code = (package / "task.py").read_text(encoding="utf-8")
    assert task_line in code and "confusion" not in code
    assert target in (package / "data" / "sample.py").read_text(encoding="utf-8")
    config = (project / "configs" / "default.yaml").read_text(encoding="utf-8")
    assert f"monitor: {monitor}" in config and "label_smoothing" not in config


def test_any_unicode_text_keeps_pyproject_valid(tmp_path):
    # pyproject.toml also configures ruff and pytest: if it does not parse, nothing works.
    text = {"author_name": "Zoë 🐍 O'Brien", "description": 'Rockets 🚀, "quotes" & \\ é'}
    project = render(tmp_path, dataset_type="tabular_csv", gpu="none", **text)
    with open(project / "pyproject.toml", "rb") as f:
        meta = tomllib.load(f)["project"]
    assert meta["description"] == text["description"]
    assert meta["authors"][0]["name"] == text["author_name"]
    assert text["author_name"] in (project / "LICENSE").read_text(encoding="utf-8")


def test_builds_as_wheel_offline(tmp_path):
    project = render(tmp_path / "src", dataset_type="image_folder", gpu="none")
    proc = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            ".",
        ],
        cwd=project,
    )
    assert proc.returncode == 0, explain(proc)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "image_classifier/engine.py" in names
    assert "image_classifier/models/cnn.py" in names
    assert not [n for n in names if n.split("/")[0] in ("tests", "configs", "data")], names


def test_one_install_command_everywhere(tmp_path):
    """The quick start, the post-gen message and the generated README install alike."""
    readme = (TEMPLATE_DIR / "README.md").read_text(encoding="utf-8")
    quick_start = next(line for line in readme.splitlines() if "cookiecutter --no-input" in line)
    assert f"&& {INSTALL} &&" in quick_start, quick_start
    hook = (TEMPLATE_DIR / "hooks" / "post_gen_project.py").read_text(encoding="utf-8")
    assert f"INSTALL = {INSTALL!r}" in hook  # what the message prints (checked in the CLI test)
    project = render(tmp_path, dataset_type="tabular_csv", gpu="none")
    generated = (project / "README.md").read_text(encoding="utf-8")
    installs = [line.split("#")[0].strip() for line in generated.splitlines() if "-e " in line]
    assert INSTALL in installs, installs
