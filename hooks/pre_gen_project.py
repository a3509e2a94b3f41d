"""Refuse answers that would generate a broken project, before any file is written.

Answers are rendered below with `|tojson` only, so they reach Python as string
literals (data), never as code, whatever quotes or backslashes they contain.
On failure: one `ERROR:` paragraph per bad answer on stderr, then exit 1;
cookiecutter then deletes the project directory it had just created.
"""

import json
import keyword
import re
import sys

PROJECT_SLUG = {{ cookiecutter.project_slug|tojson }}
PACKAGE_NAME = {{ cookiecutter.package_name|tojson }}
EMAIL = {{ cookiecutter.email|tojson }}
CHOSEN = {
    "license": {{ cookiecutter.license|tojson }},
    "dataset_type": {{ cookiecutter.dataset_type|tojson }},
    "task": {{ cookiecutter.task|tojson }},
    "gpu": {{ cookiecutter.gpu|tojson }},
    "experiment_tracker": {{ cookiecutter.experiment_tracker|tojson }},
}
# Yes/no answers: JSON true/false is not Python, so the JSON text is parsed as data.
FLAGS = json.loads(
    {{ {
        "use_prefetch": cookiecutter.use_prefetch,
        "use_github_actions": cookiecutter.use_github_actions,
    }|tojson|tojson }}
)

# Same lists as cookiecutter.json (a template test keeps them in sync).
# Cookiecutter checks choices given on its command line, but not those read
# from a replay file, so they are checked here too.
CHOICES = {
    "license": ["MIT", "BSD-3-Clause", "Apache-2.0", "none"],
    "dataset_type": ["image_folder", "image_list", "tabular_csv", "torchvision"],
    "task": ["classification", "regression", "multilabel"],
    "gpu": ["single", "multi", "none"],
    "experiment_tracker": ["none", "tensorboard", "mlflow", "wandb"],
}

# Which data types each task serves (`_task_data` of cookiecutter.json).
TASK_DATA = json.loads({{ cookiecutter._task_data|tojson|tojson }})

SLUG_RULE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
# Loose on purpose: it only has to be accepted in pyproject.toml's `authors`.
EMAIL_RULE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

# Names the package must not take: modules the generated project imports, tools
# it runs, and the project's own top-level files and folders (data/ holds the
# sample data, runs/ the outputs, train.py, evaluate.py and predict.py sit next to the
# package). Compared lowercased: `Torch/` shadows `torch` on macOS and Windows.
TAKEN = {
    "torch", "torchvision", "yaml", "tqdm", "numpy", "pil", "pillow",
    "pytest", "_pytest", "ruff", "setuptools", "pkg_resources", "pip", "wheel",
    "cookiecutter", "jinja2", "tomli", "typing_extensions", "matplotlib", "tensorboard",
    "mlflow", "wandb", "optuna", "sweep",
    "test", "tests", "configs", "config", "data", "models", "utils", "runs",
    "train", "evaluate", "predict", "checkpoint", "trainer", "src", "docs", "build", "dist",
}  # fmt: skip
TAKEN |= {name.lower() for name in getattr(sys, "stdlib_module_names", ())}


def check():
    """Return one message per bad answer (empty when all are fine)."""
    errors = []
    if not SLUG_RULE.fullmatch(PROJECT_SLUG):
        hint = re.sub(r"[^a-z0-9]+", "-", PROJECT_SLUG.lower()).strip("-") or "my-project"
        errors.append(
            f"project_slug {PROJECT_SLUG!r} is not a valid project slug. It names the "
            "project folder and the distribution, so it must be lowercase ASCII "
            "letters and digits, in words joined by single hyphens (regex "
            f"^[a-z0-9]+(-[a-z0-9]+)*$), for example {hint!r}."
        )

    rule = (
        "it must be a valid Python identifier made of ASCII letters, digits and "
        "underscores, not starting with a digit, for example 'my_project'"
    )
    if not (PACKAGE_NAME.isascii() and PACKAGE_NAME.isidentifier()):
        errors.append(f"package_name {PACKAGE_NAME!r} is not a valid package name: {rule}.")
    elif keyword.iskeyword(PACKAGE_NAME):
        errors.append(
            f"package_name {PACKAGE_NAME!r} is a Python keyword, so `import "
            f"{PACKAGE_NAME}` would be a syntax error: {rule}, and not a keyword."
        )
    elif PACKAGE_NAME.lower() in TAKEN:
        errors.append(
            f"package_name {PACKAGE_NAME!r} would shadow a module or folder of that "
            "name that the generated project needs (a standard-library module, torch, "
            "torchvision, yaml, tqdm, numpy, PIL, matplotlib, pytest, or the project's "
            "own tests/, data/, configs/, runs/, train.py, evaluate.py, predict.py): "
            f"choose another name, for example {PACKAGE_NAME.lower() + '_project'!r}."
        )

    if not EMAIL_RULE.fullmatch(EMAIL):
        errors.append(
            f"email {EMAIL!r} does not look like an e-mail address (name@domain.tld, "
            "no spaces); it is written into pyproject.toml, whose build checks it."
        )

    for name, value in CHOSEN.items():
        if value not in CHOICES[name]:
            valid = ", ".join(CHOICES[name])
            errors.append(f"{name} {value!r} is not one of the valid options: {valid}.")
    task, data = CHOSEN["task"], CHOSEN["dataset_type"]
    if task in TASK_DATA and data in CHOICES["dataset_type"] and data not in TASK_DATA[task]:
        pairs = "; ".join(f"{name} with {', '.join(types)}" for name, types in TASK_DATA.items())
        errors.append(
            f"task {task!r} does not go with dataset_type {data!r}. The valid pairs are: {pairs}. "
            f"Choose another task, or a dataset_type that {task} serves."
        )
    for name, value in FLAGS.items():
        if not isinstance(value, bool):
            errors.append(
                f"{name} {value!r} is not a yes/no answer: use true or false "
                "(yes/no, 1/0 on the CLI)."
            )
    return errors


if __name__ == "__main__":
    errors = check()
    if errors:
        print("\n\n".join(f"ERROR: {message}" for message in errors), file=sys.stderr)
        sys.exit(1)
