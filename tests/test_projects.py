"""Render a covering table of answer combinations, then lint, test, train and break each render.

SUPPORTED_COMBINATIONS is a covering table: every valid pair of answers of the choice and yes/no
prompts (dataset_type x task, task x gpu, task x experiment_tracker, dataset_type x gpu, license x
use_prefetch, ...) is in at least one row; test_the_table_covers_every_valid_pair derives the
pairs from cookiecutter.json and its `_task_data` (which data types each task serves, the rule the
pre-generation hook applies) and fails when a row is missing. The full product is too many
renders. The free-text answers carry quotes, apostrophes, backslashes, <>& and non-ASCII text.

One test class per row, generated from the table (tests/conftest.py hands them to xdist longest
first: the gpu=multi rows, whose own suites run torchrun). Its class-scoped fixtures render the
project once and train it once; its tests run in order on one xdist worker (`--dist loadscope` in
pyproject.toml), so each combination's expensive steps run once.
"""

import csv
import itertools
import json
import math
import re
import shutil

import pytest
import torch
import yaml
from helpers import (
    COOKIECUTTER_JSON,
    README_EXTRAS,
    TEMPLATE_PROJECT,
    default_answers,
    expected_files,
    explain,
    python,
    readme_install_env,
    render,
    run,
)
from PIL import Image

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SUPPORTED_COMBINATIONS = [
    {
        "dataset_type": "image_folder",
        "task": "classification",
        "gpu": "single",
        "use_prefetch": False,
        "experiment_tracker": "wandb",
        "use_github_actions": False,
        "license": "MIT",
        "project_name": 'Bob\'s "Best" Net',
        "author_name": "O'Brien",
        "description": 'Finds "shapes" in images; it\'s a test.',
    },
    {
        "dataset_type": "image_folder",
        "task": "classification",
        "gpu": "none",
        "use_prefetch": True,
        "experiment_tracker": "mlflow",
        "use_github_actions": True,
        "license": "none",
        "project_name": "Zoë's Vision",
        "package_name": "vision_net",
        "author_name": 'Zoë "Z" D\'Arcy',
        "email": "zoe.darcy@example.org",
    },
    {
        "dataset_type": "image_folder",
        "task": "classification",
        "gpu": "multi",
        "use_prefetch": False,
        "experiment_tracker": "none",
        "use_github_actions": False,
        "license": "BSD-3-Clause",
        "project_name": "Shapes at Scale",
    },
    {
        "dataset_type": "image_folder",
        "task": "classification",
        "gpu": "single",
        "use_prefetch": False,
        "experiment_tracker": "tensorboard",
        "use_github_actions": True,
        "license": "Apache-2.0",
        "project_name": "Folders & Boards",
    },
    {
        "dataset_type": "image_list",
        "task": "classification",
        "gpu": "single",
        "use_prefetch": True,
        "experiment_tracker": "mlflow",
        "use_github_actions": False,
        "license": "Apache-2.0",
        "project_name": 'List <of> "Images"',
    },
    {
        "dataset_type": "image_list",
        "task": "classification",
        "gpu": "multi",
        "use_prefetch": False,
        "experiment_tracker": "tensorboard",
        "use_github_actions": True,
        "license": "none",
        "project_name": "Lists \\ Everywhere",
    },
    {
        "dataset_type": "image_list",
        "task": "classification",
        "gpu": "none",
        "use_prefetch": False,
        "experiment_tracker": "none",
        "use_github_actions": False,
        "license": "MIT",
        "project_name": "Ünïcode Lists",
        "description": "Reads C:\\lists\\*.txt",
    },
    {
        "dataset_type": "image_list",
        "task": "classification",
        "gpu": "single",
        "use_prefetch": True,
        "experiment_tracker": "wandb",
        "use_github_actions": True,
        "license": "BSD-3-Clause",
        "project_name": "Listed Weights",
    },
    {
        "dataset_type": "torchvision",
        "task": "classification",
        "gpu": "single",
        "use_prefetch": True,
        "experiment_tracker": "none",
        "use_github_actions": True,
        "license": "Apache-2.0",
        "project_name": "Digits & 'Friends'",
    },
    {
        "dataset_type": "torchvision",
        "task": "classification",
        "gpu": "single",
        "use_prefetch": False,
        "experiment_tracker": "tensorboard",
        "use_github_actions": False,
        "license": "BSD-3-Clause",
        "project_name": "Torchvision Zoo",
        "package_name": "zoo_net",
    },
    {
        "dataset_type": "torchvision",
        "task": "classification",
        "gpu": "none",
        "use_prefetch": False,
        "experiment_tracker": "wandb",
        "use_github_actions": True,
        "license": "none",
        "project_name": "Digits Everywhere",
    },
    {
        "dataset_type": "torchvision",
        "task": "classification",
        "gpu": "multi",
        "use_prefetch": True,
        "experiment_tracker": "mlflow",
        "use_github_actions": True,
        "license": "MIT",
        "project_name": "Digits at Scale",
    },
    {
        "dataset_type": "tabular_csv",
        "task": "regression",
        "gpu": "none",
        "use_prefetch": False,
        "experiment_tracker": "mlflow",
        "use_github_actions": False,
        "license": "BSD-3-Clause",
        "project_name": "Tabular <Net> & Co",
        "author_name": "A. N. Other",
        "description": "Reads C:\\data\\*.csv & 'scores' <fast>",
    },
    {
        "dataset_type": "tabular_csv",
        "task": "regression",
        "gpu": "multi",
        "use_prefetch": False,
        "experiment_tracker": "wandb",
        "use_github_actions": True,
        "license": "Apache-2.0",
        "project_name": "Wide 'Tables'",
    },
    {
        "dataset_type": "tabular_csv",
        "task": "regression",
        "gpu": "single",
        "use_prefetch": False,
        "experiment_tracker": "none",
        "use_github_actions": False,
        "license": "none",
        "project_name": "House Prices",
    },
    {
        "dataset_type": "tabular_csv",
        "task": "regression",
        "gpu": "single",
        "use_prefetch": True,
        "experiment_tracker": "tensorboard",
        "use_github_actions": False,
        "license": "MIT",
        "project_name": "Price Boards",
    },
    {
        "dataset_type": "tabular_csv",
        "task": "multilabel",
        "gpu": "none",
        "use_prefetch": True,
        "experiment_tracker": "none",
        "use_github_actions": True,
        "license": "MIT",
        "project_name": "Tag Table",
    },
    {
        "dataset_type": "tabular_csv",
        "task": "multilabel",
        "gpu": "multi",
        "use_prefetch": False,
        "experiment_tracker": "mlflow",
        "use_github_actions": False,
        "license": "Apache-2.0",
        "project_name": "Tags at Scale",
    },
    {
        "dataset_type": "tabular_csv",
        "task": "multilabel",
        "gpu": "single",
        "use_prefetch": True,
        "experiment_tracker": "tensorboard",
        "use_github_actions": False,
        "license": "BSD-3-Clause",
        "project_name": "Tag Boards",
    },
    {
        "dataset_type": "tabular_csv",
        "task": "multilabel",
        "gpu": "single",
        "use_prefetch": False,
        "experiment_tracker": "wandb",
        "use_github_actions": True,
        "license": "none",
        "project_name": "Tagged 'Rows'",
    },
    {
        "dataset_type": "tabular_csv",
        "task": "classification",
        "gpu": "none",
        "use_prefetch": True,
        "experiment_tracker": "tensorboard",
        "use_github_actions": True,
        "license": "Apache-2.0",
        "project_name": "Plain Table",
        "project_slug": "plain-table-2",
    },
]

# The rows whose scripts are also run and broken from the command line (CliChecks), by class name:
# each dataset_type, task and gpu answer once.
CLI_CHECKED = {
    "TestImageFolderSingleGpuWandb",
    "TestImageListMultiGpuTensorboard",
    "TestTabularCsvClassificationCpuTensorboard",
    "TestTabularCsvMultilabelCpuNone",
    "TestTabularCsvRegressionMultiGpuWandb",
    "TestTorchvisionCpuWandb",
}
# The rows that export every model in every format (ExportChecks): the export code is the same in
# every render of a task; each project's own suite exports its default model in every format.
EXPORTED_EVERY_MODEL = {
    "TestImageFolderCpuMlflow",
    "TestTabularCsvClassificationCpuTensorboard",
    "TestTabularCsvMultilabelCpuNone",
    "TestTabularCsvRegressionCpuMlflow",
}
EXPORT_SUFFIXES = {"onnx": ".onnx", "exported": ".pt2", "torchscript": ".torchscript.pt"}
# What each task writes: metrics.csv's header, its eval/ files, and what the smoke run must reach.
METRICS_HEADER = {
    "classification": "epoch train_loss train_acc val_loss val_acc val_macro_f1 lr time_s".split(),
    "regression": "epoch train_loss train_rmse val_loss val_mae val_rmse val_r2 lr time_s".split(),
    "multilabel": (
        "epoch train_loss train_map val_loss val_map val_micro_f1 val_macro_f1 lr time_s".split()
    ),
}
EVAL_FILES = {
    "classification": [
        "report.json",
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "predictions.csv",
    ],
    "regression": "report.json predictions.csv residuals.csv predicted_vs_actual.png".split(),
    "multilabel": "report.json predictions.csv per_label.csv".split(),
}
LEARNT = {
    "classification": ("val_acc", 0.8),
    "regression": ("val_r2", 0.7),
    "multilabel": ("val_map", 0.8),
}  # the sample data, learnt
RUN_FILES = "config.yaml train.log metrics.csv checkpoints/last.pt checkpoints/best.pt".split()
NOT_SOURCES = {"__pycache__", ".pytest_cache", ".ruff_cache", "runs", "data"}  # at the root
FLAGS = [key for key, value in COOKIECUTTER_JSON.items() if isinstance(value, bool)]
# A marker the post-gen hook missed: `  # use_prefetch` at the end of a line, any spacing.
MARKER = re.compile(r"#\s*(" + "|".join(COOKIECUTTER_JSON["_markers"]) + r")\s*$")

# Code an answer must not render, in .py files and configs/ (README prose may name it).
DDP_CODE = [
    "DistributedDataParallel",
    r"torch\.distributed",
    "all_reduce",
    "world_size",
    "torchrun",
]
NOT_RENDERED = {
    "none": [
        "(?i)cuda",
        "autocast",
        "GradScaler",
        "channels_last",
        "pin_memory",
        "non_blocking",
        r"^\s*preload:.*\bdevice\b",  # the YAML key's value or its list of choices
        r"preload.*[\"']device[\"']",  # the choice in Python
        *DDP_CODE,
    ],
    "single": DDP_CODE,
    "multi": [],
}
# The skip reason of a project test that needs a CUDA device (`-ra` summary line).
NEEDS_CUDA = re.compile(r"needs (a |\d+ )?CUDA")
# ... of one that needs an optional extra (`needs timm: pip install -e ".[timm]"`); its file.
NEEDS_EXTRA = re.compile(
    r"needs [\w.-]+: (python -m )?pip install -e [\"']\.\[(?P<extra>[\w-]+)\][\"']"
)
SKIP_FILE = re.compile(r"^SKIPPED \[\d+\] (?P<file>[^:]+\.py):")


def valid_pairs() -> set:
    """Every pair of answers some valid combination has: each choice and yes/no prompt of
    cookiecutter.json against each other, less the task x dataset_type pairs `_task_data`
    refuses."""
    prompts = {
        key: value if isinstance(value, list) else [True, False]
        for key, value in COOKIECUTTER_JSON.items()
        if not key.startswith("_") and isinstance(value, (list, bool))
    }
    pairs = set()
    for (a, values_a), (b, values_b) in itertools.combinations(sorted(prompts.items()), 2):
        for x, y in itertools.product(values_a, values_b):
            answers = {a: x, b: y}
            if "task" in answers and "dataset_type" in answers:
                if answers["dataset_type"] not in COOKIECUTTER_JSON["_task_data"][answers["task"]]:
                    continue
            pairs.add((a, x, b, y))
    return pairs


def test_the_table_covers_every_valid_pair():
    """Every valid pair of answers is in some row, and every row is a valid combination."""
    needed = valid_pairs()
    assert {"task", "dataset_type", "gpu", "experiment_tracker", "license", "use_prefetch"} <= {
        name for pair in needed for name in pair[::2]
    }
    seen = set()
    for row in SUPPORTED_COMBINATIONS:
        answers = {**default_answers(), **row}
        assert answers["dataset_type"] in COOKIECUTTER_JSON["_task_data"][answers["task"]], row
        seen |= {(a, answers[a], b, answers[b]) for a, _, b, _ in needed}
    missing = sorted(needed - seen, key=str)
    assert not missing, f"no row of SUPPORTED_COMBINATIONS has these pairs: {missing}"
    names = [class_name(row) for row in SUPPORTED_COMBINATIONS]
    assert len(set(names)) == len(names), "two rows share a test class name"
    assert CLI_CHECKED | EXPORTED_EVERY_MODEL <= set(names)
    cli = [row for row in SUPPORTED_COMBINATIONS if class_name(row) in CLI_CHECKED]
    for key in ("dataset_type", "task", "gpu"):
        assert {row[key] for row in cli} == set(COOKIECUTTER_JSON[key]), key


def test_no_jinja_control_flow_in_template_python():
    """Variants are whole files chosen by the post-gen hook; `{{ }}` only names things."""
    tagged = {}
    for path in sorted(TEMPLATE_PROJECT.rglob("*.py")):
        count = path.read_text(encoding="utf-8").count("{%")
        if count:
            tagged[path.relative_to(TEMPLATE_PROJECT).as_posix()] = count
    assert not tagged, f"`{{%` tags in template Python: {tagged}"


def source_files(root):
    """Files as rendered: skip caches and run outputs (runs/, data/ at the root)."""
    found = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] not in NOT_SOURCES and "__pycache__" not in rel.parts:
            found.add(rel.as_posix())
    return found


def read_metrics(run_dir, task):
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == METRICS_HEADER[task]
    return [dict(zip(rows[0], map(float, row), strict=True)) for row in rows[1:]]


class Project:
    def __init__(self, answers, root):
        self.answers = {**default_answers(), **answers}  # given, else the default
        self.root = root
        self.package = answers.get("package_name", root.name.replace("-", "_"))
        self.files_at_render = source_files(root)
        dataset_type = self.answers["dataset_type"]
        # Overrides every train run gets (torchvision: the offline sample files).
        self.data_args = (
            ("data.root=data/mnist", "data.download=false")
            if dataset_type == "torchvision"
            else ()
        )

    def python(self, *args):
        return python(*args, cwd=self.root)

    def train(self, *args):
        # Options (--resume) first, then key=value overrides: the documented order.
        return self.python("train.py", *args, "data.num_workers=0", *self.data_args)

    def text_files(self):
        for rel in sorted(self.files_at_render):
            yield rel, (self.root / rel).read_text(encoding="utf-8")


class ProjectChecks:
    """Every check of one rendered project; a subclass per combination sets `answers`."""

    answers: dict

    @pytest.fixture(scope="class")
    @classmethod
    def project(cls, tmp_path_factory):
        root = render(tmp_path_factory.mktemp(cls.__name__), **cls.answers)
        project = Project(cls.answers, root)
        if project.answers["dataset_type"] == "torchvision":
            # No downloads here: write MNIST's real file format with the project's own writer.
            # 60 + 15 images per class: the default config still learns them, in a few seconds.
            sample = ["data/mnist", "--name", "MNIST", "--train-per-class", "60"]
            sample += ["--test-per-class", "15"]
            proc = project.python("-m", f"{project.package}.data.sample", *sample)
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
        # The same table (`_files` in cookiecutter.json) the post-gen hook applies.
        assert project.files_at_render == expected_files(project.answers, project.package)

    def test_no_jinja_left(self, project):
        for rel, text in project.text_files():
            text = text.replace("${{", "")  # GitHub Actions expressions are meant to stay
            for marker in ("{{", "{%", "{#"):
                assert marker not in text, f"{rel} still contains {marker!r}"

    def test_marker_lines_applied(self, project):
        # Kept marked lines lost their marker and the spaces before it; the rest are gone.
        for rel, text in project.text_files():
            for number, line in enumerate(text.splitlines(), 1):
                assert not MARKER.search(line), f"{rel}:{number}: marker left: {line!r}"
                assert line == line.rstrip(), f"{rel}:{number}: trailing whitespace"

    def test_only_the_chosen_hardware_code(self, project):
        patterns = [re.compile(p, re.MULTILINE) for p in NOT_RENDERED[project.answers["gpu"]]]
        for rel, text in project.text_files():
            if not (rel.endswith(".py") or rel.startswith("configs/")):
                continue
            for pattern in patterns:
                found = pattern.search(text)
                if found:
                    number = text.count("\n", 0, found.start()) + 1
                    line = text.splitlines()[number - 1].strip()
                    gpu = project.answers["gpu"]
                    pytest.fail(f"gpu={gpu}: {rel}:{number} renders {found[0]!r}: {line}")

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

    @pytest.fixture(scope="class")
    @classmethod
    def readme_suite(cls, project, tmp_path_factory):
        """The project's own suite as after the README's `pip install -e ".[dev,export]"`: every
        other installed package is made unimportable (helpers.readme_install_env): the whole suite
        runs once, not once per environment. Returns the run and its skip lines."""
        env = readme_install_env(project.root, tmp_path_factory.mktemp("readme-install"))
        proc = python(
            "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", cwd=project.root, env=env
        )
        return proc, [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]

    def test_own_tests_pass_after_the_readme_install(self, project, readme_suite):
        # Only tests that need an extra outside the README's install may skip (naming its pip
        # line), and those that need a GPU this machine lacks.
        proc, skipped = readme_suite
        assert proc.returncode == 0, explain(proc)
        for line in skipped:
            if project.answers["gpu"] != "none" and NEEDS_CUDA.search(line):
                continue
            extra = NEEDS_EXTRA.search(line)
            assert extra and extra["extra"] not in README_EXTRAS, (
                f"a skip after the README's install: {line}"
            )

    def test_own_tests_pass_and_none_skipped(self, project, readme_suite):
        # With every extra the answers use (this environment has them all), nothing may skip: a
        # skip would hide a test of something this combination chose. The whole suite passed after
        # the README's install: here the files whose tests skipped there run again, with every
        # package importable. Only tests that need a GPU this machine lacks may skip, and only
        # where the answers chose a GPU.
        skips = [line for line in readme_suite[1] if not NEEDS_CUDA.search(line)]
        files = sorted({SKIP_FILE.search(line)["file"] for line in skips})
        if not files:
            return
        proc = project.python("-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", *files)
        assert proc.returncode == 0, explain(proc)
        skipped = [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
        if project.answers["gpu"] != "none" and not torch.cuda.is_available():
            skipped = [line for line in skipped if not NEEDS_CUDA.search(line)]
        assert not skipped, "the project's own tests skipped:\n" + "\n".join(skipped)

    def test_train_right_after_rendering(self, project, smoke):
        task = project.answers["task"]
        for name in [*RUN_FILES, *(f"eval/val/{name}" for name in EVAL_FILES[task])]:
            assert (smoke / name).is_file(), f"{name} missing from {smoke}"
        config = yaml.safe_load((smoke / "config.yaml").read_text(encoding="utf-8"))
        rows = read_metrics(smoke, task)
        assert 1 <= len(rows) <= config["trainer"]["epochs"]
        assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in rows)
        metric, floor = LEARNT[task]
        assert rows[-1][metric] > floor, f"the sample data was not learnt: {rows}"
        # matplotlib is installed here, so training ends by drawing its curves.
        with Image.open(smoke / "curves.png") as curves:
            curves.verify()
            assert curves.format == "PNG"


class CliChecks:
    """The scripts as a user runs them after the first training: evaluate.py prints its JSON,
    `--resume` adds an epoch, and a typo on the command line is one line, no traceback, no run dir.

    Run for CLI_CHECKED only (each dataset_type and each gpu answer once): the scripts and the
    config code are the same in every render of a dataset_type, and each project's own suite runs
    train.py and evaluate.py as commands (test_cli_train_then_evaluate), resumes and breaks every
    render in-process.
    """

    def test_evaluate_prints_json(self, project, smoke):
        proc = project.python("evaluate.py", str(smoke / "checkpoints" / "best.pt"))
        assert proc.returncode == 0, explain(proc)
        metrics = json.loads(proc.stdout)  # stdout holds the JSON object and nothing else
        assert math.isfinite(metrics["loss"])
        saved = json.loads((smoke / "eval" / "val" / "report.json").read_text(encoding="utf-8"))
        if project.answers["task"] == "regression":
            # The report in the target's units: the same numbers as best.pt's row of metrics.csv.
            best = min(read_metrics(smoke, "regression"), key=lambda row: row["val_rmse"])
            for key in ("mae", "rmse", "r2"):
                assert metrics[key] == pytest.approx(best[f"val_{key}"], rel=1e-6), (metrics, best)
            assert "RMSE" in proc.stderr and saved["rmse"] == metrics["rmse"], explain(proc)
            return
        if project.answers["task"] == "multilabel":
            # The report applies best.pt's thresholds (tuned on val by that epoch's validation).
            assert 0.8 < metrics["map"] <= 1.0 and 0.0 <= metrics["micro_f1"] <= 1.0, metrics
            thresholds = [scores["threshold"] for scores in metrics["per_label"].values()]
            assert thresholds == metrics["thresholds"] and all(0 <= t <= 1 for t in thresholds)
            assert "mAP" in proc.stderr, explain(proc)
            for key in ("map", "micro_f1", "macro_f1", "per_label", "thresholds"):
                assert saved[key] == metrics[key], (key, saved, metrics)
            return
        assert 0.8 < metrics["accuracy"] <= 1.0, metrics
        assert 0.0 <= metrics["macro_f1"] <= 1.0 and 0.0 <= metrics["ece"] <= 1.0, metrics
        assert sum(map(sum, metrics["confusion_matrix"])) == metrics["num_samples"], metrics
        assert "precision" in proc.stderr and "macro F1" in proc.stderr, explain(proc)  # the table
        # The same report as the end of training wrote for best.pt (evaluate.py rewrote it).
        assert saved["confusion_matrix"] == metrics["confusion_matrix"], (saved, metrics)

    def test_resume_adds_an_epoch(self, project, smoke):
        # After the other smoke checks: it extends the smoke run. Resume continues in the same run
        # dir, appends to metrics.csv, and with more epochs it stretches the (cosine) schedule
        # instead of training at lr 0.
        task = project.answers["task"]
        rows = read_metrics(smoke, task)
        proc = project.train("--resume", str(smoke), f"trainer.epochs={len(rows) + 1}")
        assert proc.returncode == 0, explain(proc)
        resumed = read_metrics(smoke, task)
        assert [row["epoch"] for row in resumed] == list(range(1, len(rows) + 2))
        assert resumed[:-1] == rows, "resuming rewrote the finished epochs"
        assert resumed[-1]["lr"] > 0, f"the resumed epoch trained at lr 0: {resumed}"

    def test_typo_in_key_is_refused(self, project):
        runs = project.root / "runs"
        before = sorted(runs.iterdir()) if runs.exists() else []
        proc = project.train("trainer.epoch=1")
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, explain(proc)
        assert "trainer.epoch" in output and "trainer.epochs" in output, explain(proc)
        assert "Traceback" not in output, explain(proc)
        assert (sorted(runs.iterdir()) if runs.exists() else []) == before, "a run dir appeared"


class ExportChecks:
    """Every model of models/registry.py (and a torchvision one), trained one epoch, exported in
    every format (parity checked by export.py), then predicting through predict.py as its
    checkpoint does."""

    # One process for every model and format: torch is imported once.
    EXPORT_EVERY_MODEL = """
import json, os, sys
import export, predict, train
from {package}.models.registry import LIBRARIES, MODELS
suffixes, data_args = json.loads(sys.argv[1]), sys.argv[2:]
root = dict(arg.split("=", 1) for arg in data_args).get("data.root", "data/sample")
# Own models, and a torchvision one (hardswish, squeeze-excite) where any is taken by name.
models = [*MODELS, *(["mobilenet_v3_small"] if LIBRARIES else [])]
small = ["data.image_size=32"] if LIBRARIES else []  # images: quick epochs
for model in models:
    run_dir = f"runs/export-{{model}}"
    args = [f"model.name={{model}}", f"run_name=export-{{model}}", "trainer.epochs=1", *small]
    assert train.main([*args, "data.num_workers=0", *data_args]) == 0  # writes the sample data
    found = (f"{{root}}/{{name}}" for name in ("val.csv", "train.csv", "val"))
    inputs = [next(path for path in found if os.path.exists(path))]
    assert predict.main([run_dir, *inputs, "--output", f"{{run_dir}}/predictions.csv"]) == 0
    for fmt, suffix in suffixes.items():
        assert export.main([run_dir, "--format", fmt]) == 0
        exported, output = f"{{run_dir}}/export/last{{suffix}}", f"{{run_dir}}/{{fmt}}.csv"
        assert predict.main([exported, *inputs, "--output", output]) == 0
print(json.dumps(models))
"""

    def test_every_model_exports_in_every_format(self, project):
        script = self.EXPORT_EVERY_MODEL.format(package=project.package)
        proc = project.python("-c", script, json.dumps(EXPORT_SUFFIXES), *project.data_args)
        assert proc.returncode == 0, explain(proc)
        models = json.loads(proc.stdout.splitlines()[-1])
        assert models, "models/registry.py has no model"
        for model, fmt in itertools.product(models, EXPORT_SUFFIXES):
            run_dir = project.root / "runs" / f"export-{model}"
            sidecar = run_dir / "export" / f"last{EXPORT_SUFFIXES[fmt]}.json"
            parity = json.loads(sidecar.read_text(encoding="utf-8"))["parity"]
            assert parity["outside_tolerance"] == 0, (model, fmt, parity)
            expected = read_predictions(run_dir / "predictions.csv")
            got = read_predictions(run_dir / f"{fmt}.csv")
            assert [r["input"] for r in got] == [r["input"] for r in expected], (model, fmt)
            for row, want in zip(got, expected, strict=True):
                assert row.keys() == want.keys(), (model, fmt)
                if project.answers["task"] != "regression":  # the class or tags, every probability
                    assert row["prediction"] == want["prediction"], (model, fmt, row, want)
                    numbers = [k for k in want if k.startswith("p_")]
                else:  # every value, in the target's units
                    numbers = [k for k in want if k not in ("input", "id")]
                gaps = [
                    abs(float(row[k]) - float(want[k])) / max(1.0, abs(float(want[k])))
                    for k in numbers
                ]
                assert numbers and max(gaps) <= 1e-4, (model, fmt, row, want)


def read_predictions(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def class_name(answers):
    """TestImageFolderSingleGpuWandb, TestTabularCsvRegressionCpuMlflow, ...: the data type, the
    task where the data type serves several, the hardware and the tracker."""
    hardware = {"none": "Cpu", "single": "SingleGpu", "multi": "MultiGpu"}[answers["gpu"]]
    data = answers["dataset_type"]
    task = answers["task"].title() if len(tasks_of(data)) > 1 else ""
    tracker = answers["experiment_tracker"].title()
    return "Test" + data.title().replace("_", "") + task + hardware + tracker


def tasks_of(dataset_type) -> list[str]:
    return [
        task for task, types in COOKIECUTTER_JSON["_task_data"].items() if dataset_type in types
    ]


def checks_of(answers) -> tuple[type, ...]:
    name = class_name(answers)
    extra = [(CliChecks, CLI_CHECKED), (ExportChecks, EXPORTED_EVERY_MODEL)]
    return (ProjectChecks, *[checks for checks, names in extra if name in names])


# The test classes: one per row of SUPPORTED_COMBINATIONS.
globals().update(
    (class_name(answers), type(class_name(answers), checks_of(answers), {"answers": answers}))
    for answers in SUPPORTED_COMBINATIONS
)
