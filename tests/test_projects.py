"""Render every dataset_type x gpu combination, then lint, test, train and break it.

use_prefetch, use_tensorboard and use_github_actions are cycled so that each
dataset_type and each gpu answer meets both values of each.

One test class per combination. Its class-scoped fixtures render the project once
and train it once; its tests run in order on one xdist worker (`--dist loadscope`
in pyproject.toml), so each combination's expensive steps run once per session.
"""

import csv
import json
import math
import shutil

import pytest
import yaml
from helpers import COOKIECUTTER_JSON, explain, python, render, run
from PIL import Image

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

METRICS_HEADER = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time_s"]
RUN_FILES = "config.yaml train.log metrics.csv checkpoints/last.pt checkpoints/best.pt".split()
NOT_SOURCES = {"__pycache__", ".pytest_cache", ".ruff_cache", "runs", "data"}  # at the root


def expected_files(answers, package):
    files = {
        ".gitignore", "README.md", "pyproject.toml", "configs/default.yaml",
        "train.py", "evaluate.py", "predict.py", "tests/test_predict.py", "tests/test_plot.py",
        "tests/conftest.py", "tests/test_config.py", "tests/test_data.py",
        "tests/test_models.py", "tests/test_checkpoint.py", "tests/test_train.py",
        "tests/test_preload.py", "tests/test_guide.py", "docs/GUIDE.md", "tests/test_progress.py",
        ".pre-commit-config.yaml", "Makefile", ".template-answers.json",
    }  # fmt: skip
    files |= {
        f"{package}/{name}"
        for name in [
            "__init__.py", "config.py", "checkpoint.py", "trainer.py", "plot.py",
            "data/__init__.py", "data/common.py", "data/dataset.py", "data/sample.py",
            "data/preload.py",
            "models/__init__.py", "models/layers.py",
            "utils/__init__.py", "utils/logs.py", "utils/seeding.py", "utils/device.py",
        ]
    }  # fmt: skip
    if answers["dataset_type"] == "tabular_csv":
        files |= {f"{package}/models/mlp.py"}
    else:
        files |= {
            f"{package}/models/cnn.py",
            f"{package}/models/resnet.py",
            f"{package}/data/images.py",
        }
        files.add("tests/test_images.py")
    if answers["use_prefetch"]:
        files |= {f"{package}/data/prefetch.py", "tests/test_prefetch.py"}
    if answers["use_tensorboard"]:
        files |= {f"{package}/utils/tensorboard.py", "tests/test_tensorboard.py"}
    if answers["use_github_actions"]:
        files.add(".github/workflows/ci.yml")
    if answers["gpu"] == "multi":
        files |= {f"{package}/utils/distributed.py", "tests/test_distributed.py"}
    if answers["license"] != "none":
        files.add("LICENSE")
    return files


def source_files(root):
    """Files as rendered: skip caches and run outputs (runs/, data/ at the root)."""
    found = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] not in NOT_SOURCES and "__pycache__" not in rel.parts:
            found.add(rel.as_posix())
    return found


def read_metrics(run_dir):
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == METRICS_HEADER
    return [dict(zip(rows[0], map(float, row), strict=True)) for row in rows[1:]]


def snapshot(directory):
    """Every file's content and mtime, to prove a refused command touched nothing."""
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}


class Project:
    def __init__(self, answers, root):
        self.answers = {**COOKIECUTTER_JSON, **answers}  # given, else the default
        self.root = root
        self.package = answers.get("package_name", root.name.replace("-", "_"))
        self.files_at_render = source_files(root)

    def python(self, *args):
        return python(*args, cwd=self.root)

    def train(self, *args):
        # Options (--resume) first, then key=value overrides: the documented order.
        return self.python("train.py", *args, "data.num_workers=0", *self.data_args)


class ProjectChecks:
    """Every check of one rendered project; a subclass per combination sets `answers`."""

    answers: dict
    image_size: tuple = ()  # overrides that make the extra runs cheaper
    data_args: tuple = ()  # overrides every train run gets (torchvision: offline sample files)

    @pytest.fixture(scope="class")
    @classmethod
    def project(cls, tmp_path_factory):
        root = render(tmp_path_factory.mktemp(cls.__name__), **cls.answers)
        project = Project(cls.answers, root)
        project.data_args = cls.data_args
        if project.answers["dataset_type"] == "torchvision":
            # No downloads here: write MNIST's real file format with the project's own writer.
            proc = project.python(
                "-m", f"{project.package}.data.sample", "data/mnist", "--name", "MNIST"
            )
            assert proc.returncode == 0, explain(proc)
        return project

    @pytest.fixture(scope="class")
    @classmethod
    def smoke(cls, project):
        """`python train.py` right after rendering: default config, sample data."""
        proc = project.train("run_name=smoke")
        assert proc.returncode == 0, explain(proc)
        return project.root / "runs" / "smoke"

    def test_renders_exactly_the_expected_files(self, project):
        assert project.files_at_render == expected_files(project.answers, project.package)

    def test_no_jinja_left(self, project):
        for rel in project.files_at_render:
            text = (project.root / rel).read_text(encoding="utf-8")
            text = text.replace("${{", "")  # GitHub Actions expressions are meant to stay
            for marker in ("{{", "{%", "{#"):
                assert marker not in text, f"{rel} still contains {marker!r}"

    def test_answers_render_verbatim(self, project):
        answer = project.answers
        readme = (project.root / "README.md").read_text(encoding="utf-8")
        assert answer["project_name"] in readme

        with open(project.root / "pyproject.toml", "rb") as f:
            meta = tomllib.load(f)["project"]
        assert meta["name"] == project.root.name
        assert meta["description"] == answer["description"]
        assert {"name": answer["author_name"], "email": answer["email"]} in meta["authors"]

        if answer["license"] != "none":
            assert answer["author_name"] in (project.root / "LICENSE").read_text(encoding="utf-8")

    @pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
    def test_gitignore_keeps_sources_and_ignores_runs(self, project, tmp_path):
        # A throwaway repo with the project's .gitignore: `git add .` must take every source.
        shutil.copy(project.root / ".gitignore", tmp_path)
        run(["git", "init", "-q"], cwd=tmp_path)
        sources = sorted(project.files_at_render)
        proc = run(["git", "check-ignore", "--no-index", *sources], cwd=tmp_path)
        assert proc.returncode == 1, f"sources ignored by .gitignore:\n{proc.stdout}"
        proc = run(["git", "check-ignore", "--no-index", "runs/x/metrics.csv"], cwd=tmp_path)
        assert proc.returncode == 0, "run outputs are not ignored"

    def test_ruff_clean(self, project):
        for args in (["check"], ["format", "--check"]):
            proc = project.python("-m", "ruff", *args, "--no-cache", ".")
            assert proc.returncode == 0, explain(proc)

    def test_own_tests_pass(self, project):
        proc = project.python("-m", "pytest", "-q", "-p", "no:cacheprovider")
        assert proc.returncode == 0, explain(proc)

    def test_train_right_after_rendering(self, smoke):
        for name in RUN_FILES:
            assert (smoke / name).is_file(), f"{name} missing from {smoke}"
        config = yaml.safe_load((smoke / "config.yaml").read_text(encoding="utf-8"))
        rows = read_metrics(smoke)
        assert 1 <= len(rows) <= config["trainer"]["epochs"]
        assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in rows)
        assert rows[-1]["val_acc"] > 0.8, f"the sample data was not learnt: {rows}"
        # matplotlib is installed here, so training ends by drawing its curves.
        with Image.open(smoke / "curves.png") as curves:
            curves.verify()
            assert curves.format == "PNG"

    def test_evaluate_prints_json(self, project, smoke):
        proc = project.python("evaluate.py", str(smoke / "checkpoints" / "best.pt"))
        assert proc.returncode == 0, explain(proc)
        metrics = json.loads(proc.stdout)  # stdout holds the JSON object and nothing else
        assert math.isfinite(metrics["loss"])
        assert 0.8 < metrics["accuracy"] <= 1.0, metrics

    def test_one_epoch_then_resume(self, project):
        proc = project.train("trainer.epochs=1", "run_name=one", *self.image_size)
        assert proc.returncode == 0, explain(proc)
        run_dir = project.root / "runs" / "one"
        assert all((run_dir / name).is_file() for name in RUN_FILES)
        assert len(read_metrics(run_dir)) == 1

        # Resume continues in the same run dir, appends to metrics.csv, and with more
        # epochs it stretches the (cosine) schedule instead of training at lr 0.
        proc = project.train("--resume", str(run_dir), "trainer.epochs=2")
        assert proc.returncode == 0, explain(proc)
        rows = read_metrics(run_dir)
        assert [row["epoch"] for row in rows] == [1, 2]
        assert rows[1]["lr"] > 0, f"the resumed epoch trained at lr 0: {rows}"

    def test_existing_run_dir_is_refused(self, project, smoke):
        before = snapshot(smoke)
        proc = project.train("run_name=smoke", "trainer.epochs=1")
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, explain(proc)
        assert "runs/smoke" in output and "Traceback" not in output, explain(proc)
        assert snapshot(smoke) == before, "a refused run changed the existing run dir"

    def test_typo_in_key_is_refused(self, project):
        runs = project.root / "runs"
        before = sorted(runs.iterdir()) if runs.exists() else []
        proc = project.train("trainer.epoch=1")
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, explain(proc)
        assert "trainer.epoch" in output and "trainer.epochs" in output, explain(proc)
        assert "Traceback" not in output, explain(proc)
        assert (sorted(runs.iterdir()) if runs.exists() else []) == before, "a run dir appeared"


# One class per dataset_type x gpu; the other answers are cycled, with quotes,
# apostrophes, backslashes, <>& and non-ASCII text in the free-text answers.
class TestImageFolderSingleGpu(ProjectChecks):
    answers = {
        "dataset_type": "image_folder",
        "gpu": "single",
        "use_prefetch": True,
        "use_tensorboard": True,
        "use_github_actions": True,
        "project_name": 'Bob\'s "Best" Net',
        "author_name": "O'Brien",
        "description": 'Finds "shapes" in images; it\'s a test.',
        "license": "MIT",
    }
    image_size = ("data.image_size=32",)


class TestImageFolderCpu(ProjectChecks):
    answers = {
        "dataset_type": "image_folder",
        "gpu": "none",
        "use_prefetch": False,
        "use_tensorboard": False,
        "use_github_actions": False,
        "project_name": "Zoë's Vision",
        "package_name": "vision_net",
        "author_name": 'Zoë "Z" D\'Arcy',
        "email": "zoe.darcy@example.org",
        "license": "BSD-3-Clause",
    }
    image_size = ("data.image_size=32",)


class TestImageListSingleGpu(ProjectChecks):
    answers = {
        "dataset_type": "image_list",
        "gpu": "single",
        "use_prefetch": False,
        "use_tensorboard": False,
        "use_github_actions": True,
        "project_name": 'List <of> "Images"',
        "license": "Apache-2.0",
    }
    image_size = ("data.image_size=32",)


class TestImageListCpu(ProjectChecks):
    answers = {
        "dataset_type": "image_list",
        "gpu": "none",
        "use_prefetch": True,
        "use_tensorboard": True,
        "use_github_actions": True,
        "project_name": "Ünïcode Lists",
        "description": r"Reads C:\lists\*.txt",
        "license": "none",
    }
    image_size = ("data.image_size=32",)


class TestTabularSingleGpu(ProjectChecks):
    answers = {
        "dataset_type": "tabular_csv",
        "gpu": "single",
        "use_prefetch": True,
        "use_tensorboard": False,
        "use_github_actions": False,
        "project_name": "Tabular <Net> & Co",
        "author_name": "A. N. Other",
        "description": r"Reads C:\data\*.csv & 'scores' <fast>",
        "license": "Apache-2.0",
    }


class TestTabularCpu(ProjectChecks):
    answers = {
        "dataset_type": "tabular_csv",
        "gpu": "none",
        "use_prefetch": False,
        "use_tensorboard": True,
        "use_github_actions": True,
        "project_name": "Plain Table",
        "project_slug": "plain-table-2",
        "license": "none",
    }


class TestTorchvisionSingleGpu(ProjectChecks):
    answers = {
        "dataset_type": "torchvision",
        "gpu": "single",
        "use_prefetch": False,
        "use_tensorboard": True,
        "use_github_actions": True,
        "project_name": "Digits & 'Friends'",
        "license": "MIT",
    }
    data_args = ("data.root=data/mnist", "data.download=false")


class TestTorchvisionCpu(ProjectChecks):
    answers = {
        "dataset_type": "torchvision",
        "gpu": "none",
        "use_prefetch": True,
        "use_tensorboard": False,
        "use_github_actions": True,
        "project_name": "Torchvision Zoo",
        "package_name": "zoo_net",
        "license": "BSD-3-Clause",
    }
    data_args = ("data.root=data/mnist", "data.download=false")


class TestImageFolderMultiGpu(ProjectChecks):
    answers = {
        "dataset_type": "image_folder",
        "gpu": "multi",
        "use_prefetch": False,
        "use_tensorboard": False,
        "use_github_actions": True,
        "project_name": "Shapes at Scale",
        "license": "Apache-2.0",
    }
    image_size = ("data.image_size=32",)


class TestImageListMultiGpu(ProjectChecks):
    answers = {
        "dataset_type": "image_list",
        "gpu": "multi",
        "use_prefetch": True,
        "use_tensorboard": True,
        "use_github_actions": False,
        "project_name": "Lists \\ Everywhere",
        "license": "MIT",
    }
    image_size = ("data.image_size=32",)


class TestTabularMultiGpu(ProjectChecks):
    answers = {
        "dataset_type": "tabular_csv",
        "gpu": "multi",
        "use_prefetch": False,
        "use_tensorboard": True,
        "use_github_actions": True,
        "project_name": "Wide 'Tables'",
        "license": "none",
    }


class TestTorchvisionMultiGpu(ProjectChecks):
    answers = {
        "dataset_type": "torchvision",
        "gpu": "multi",
        "use_prefetch": True,
        "use_tensorboard": False,
        "use_github_actions": False,
        "project_name": "Digits Everywhere",
        "license": "BSD-3-Clause",
    }
    data_args = ("data.root=data/mnist", "data.download=false")
