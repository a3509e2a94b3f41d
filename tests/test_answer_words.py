"""Each answer renders only its own code, down to words and comments.

A render is searched for the words of the answers it was NOT given: DDP words in a one-process
render, CUDA words in a CPU render, image words in a table render and table words in an image
render, the built-in datasets' words in a render of the user's own images, a tracker's name where
none was chosen, another task's loss, metrics and report words. The search covers the generated
Python outside tests/ and configs/ (what a reader of the render reads as code); README prose may
name the other answers. Renders only: fast.
"""

import re
from pathlib import Path

import pytest
from helpers import render

DDP_WORDS = [
    r"\bDDP\b",
    "DistributedDataParallel",
    r"torch\.distributed",
    "world_size",
    "torchrun",
    "all_reduce",
    r"\branks?\b",
    r"\bshards?\b",
    r"\bgather\b",
    "SyncBatchNorm",
    "several processes",
]
CUDA_WORDS = [
    r"(?i)\bcuda\b",
    "autocast",
    "GradScaler",
    "pin_memory",
    "non_blocking",
    r"(?i)\bgpus?\b",
]
IMAGE_WORDS = [
    r"(?i)\bimages?\b",
    r"(?i)\bpixels?\b",
    "torchvision",
    r"(?i)\bjpe?g\b",
    r"(?i)\baugment",
    r"\bimage_size\b|stats_images|random_erasing",  # the image keys
]
TABLE_WORDS = [
    r"(?i)\btabular\b",
    r"(?i)\bthe table\b|\btable's\b",  # "a table of the trials" is any render's
    "embedding_threshold",
    r"(?i)categorical (column|feature)",
    "label_column",
]
# The words of a task's own code: the loss, the metrics, the report.
CLASSIFICATION_WORDS = [
    r"(?i)\baccuracy\b",
    r"(?i)confusion",
    r"(?i)softmax",
    "label_smoothing",
    "class_weights",
    "macro_f1",
    r"(?i)cross.entropy",
    r"(?i)\bclasses\b",
]
REGRESSION_WORDS = [
    r"(?i)\bregression\b",
    r"(?i)\brmse\b",
    r"\bR2\b|\br2\b",
    r"(?i)\bhuber\b",
    r"(?i)residual",
]
MULTILABEL_WORDS = [
    r"(?i)multi-?label",
    r"\bmAP\b|\bval_map\b",
    r"(?i)average.precision",
    "label_separator",
    "pos_weight",
    r"(?i)\bBCE",
]
# What a multi-label render keeps of classification's words: trainer.class_weights (pos_weight per
# label) and macro F1 (the mean of the labels' F1).
NOT_MULTILABEL = [w for w in CLASSIFICATION_WORDS if w not in ("class_weights", "macro_f1")]
DATASET_WORDS = [r"\bMNIST\b", r"\bCIFAR", "in-memory arrays", r"(?i)built-in dataset"]
TRACKER_WORDS = {
    "tensorboard": r"(?i)tensorboard",
    "mlflow": r"(?i)mlflow",
    "wandb": r"(?i)\bwandb\b|Weights & Biases|\bW&B\b",
}

# (answers, the words none of the render's code may hold)
RENDERS = {
    "image-single": (
        {"dataset_type": "image_folder", "gpu": "single"},
        DDP_WORDS
        + TABLE_WORDS
        + DATASET_WORDS
        + REGRESSION_WORDS
        + MULTILABEL_WORDS
        + list(TRACKER_WORDS.values()),
    ),
    "list-cpu-tensorboard": (
        {"dataset_type": "image_list", "gpu": "none", "experiment_tracker": "tensorboard"},
        DDP_WORDS
        + CUDA_WORDS
        + TABLE_WORDS
        + DATASET_WORDS
        + MULTILABEL_WORDS
        + [TRACKER_WORDS["mlflow"], TRACKER_WORDS["wandb"]],
    ),
    "table-regression-single-mlflow": (
        {
            "dataset_type": "tabular_csv",
            "task": "regression",
            "gpu": "single",
            "experiment_tracker": "mlflow",
        },
        DDP_WORDS
        + IMAGE_WORDS
        + DATASET_WORDS
        + CLASSIFICATION_WORDS
        + MULTILABEL_WORDS
        + [TRACKER_WORDS["tensorboard"], TRACKER_WORDS["wandb"]],
    ),
    "table-multilabel-cpu-wandb": (
        {
            "dataset_type": "tabular_csv",
            "task": "multilabel",
            "gpu": "none",
            "experiment_tracker": "wandb",
        },
        DDP_WORDS
        + CUDA_WORDS
        + IMAGE_WORDS
        + DATASET_WORDS
        + NOT_MULTILABEL
        + REGRESSION_WORDS
        + [TRACKER_WORDS["tensorboard"], TRACKER_WORDS["mlflow"]],
    ),
    "table-multi": (
        {"dataset_type": "tabular_csv", "gpu": "multi"},
        IMAGE_WORDS
        + DATASET_WORDS
        + REGRESSION_WORDS
        + MULTILABEL_WORDS
        + list(TRACKER_WORDS.values()),
    ),
    "torchvision-cpu-wandb": (
        {"dataset_type": "torchvision", "gpu": "none", "experiment_tracker": "wandb"},
        DDP_WORDS
        + CUDA_WORDS
        + TABLE_WORDS
        + [TRACKER_WORDS["tensorboard"], TRACKER_WORDS["mlflow"]],
    ),
}


def code_files(root: Path):
    """The render's Python outside tests/ and its configs."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if (
            path.is_file()
            and rel.parts[0] != "tests"
            and (path.suffix == ".py" or rel.parts[0] == "configs")
        ):
            yield rel, path.read_text(encoding="utf-8")


# PIL's API names (Image.new, ImageDraw.Draw, ...) draw any render's confusion matrix: not image
# data.
PIL_NAMES = re.compile(r"^from PIL import .*|\bImage(Draw|Font)?\.\w+")
# What every task keeps of another's on purpose: task.py names the config keys of other tasks, to
# refuse them with a reason (OTHER_TASKS_KEYS); data.balanced_sampler, which draws classes equally
# often, stays in every table render and is refused with a message where the targets are numbers.
ALLOWED = re.compile(r'^\s*"[\w.]+": ".*",?$|balanced_sampler|balanced_weights')
ALLOWED_FILES = {"data/sampling.py"}


def found_words(root: Path, patterns: list[str]) -> list[str]:
    compiled = [re.compile(pattern) for pattern in patterns]
    found = []
    for rel, text in code_files(root):
        if any(rel.as_posix().endswith(name) for name in ALLOWED_FILES):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            line = PIL_NAMES.sub("", line.strip())
            if ALLOWED.search(line):
                continue
            found += [
                f"{rel}:{number} {p.pattern!r}: {line.strip()}" for p in compiled if p.search(line)
            ]
    return found


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_a_render_holds_no_word_of_the_answers_it_was_not_given(name, tmp_path):
    answers, patterns = RENDERS[name]
    root = render(tmp_path, project_name="Words", **answers)
    found = found_words(root, patterns)
    assert not found, f"{len(found)} lines of other answers in {answers}:\n" + "\n".join(
        found[:60]
    )


def test_the_search_finds_a_planted_word(tmp_path):
    """The search itself: a DDP comment planted in a one-process render is found."""
    root = render(tmp_path, project_name="Words", dataset_type="image_folder", gpu="single")
    utils = next(root.rglob("utils.py"))
    utils.write_text(
        utils.read_text(encoding="utf-8") + "# the same on every rank\n", encoding="utf-8"
    )
    assert any("utils.py" in line for line in found_words(root, DDP_WORDS))
