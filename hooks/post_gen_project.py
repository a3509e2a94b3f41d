"""Prune what the answers do not need, put the chosen variants in place, print next steps."""

import shutil
from pathlib import Path

PACKAGE = {{ cookiecutter.package_name|tojson }}
SLUG = {{ cookiecutter.project_slug|tojson }}
DATASET_TYPE = {{ cookiecutter.dataset_type|tojson }}
LICENSE = {{ cookiecutter.license|tojson }}
GPU = {{ cookiecutter.gpu|tojson }}
USE_PREFETCH = {{ "True" if cookiecutter.use_prefetch else "False" }}
USE_GITHUB_ACTIONS = {{ "True" if cookiecutter.use_github_actions else "False" }}
USE_TENSORBOARD = {{ "True" if cookiecutter.use_tensorboard else "False" }}
DATASET_TYPES = ["image_folder", "image_list", "tabular_csv", "torchvision"]
IMAGE_ONLY = ["PKG/models/cnn.py", "PKG/models/resnet.py", "PKG/data/images.py", "tests/test_images.py"]
TABULAR_ONLY = ["PKG/models/mlp.py"]


def main() -> None:
    package = Path(PACKAGE)
    # Each data variant ships as plain Python (lintable as is); keep the chosen one.
    for stem in ("data/dataset", "data/sample"):
        for kind in DATASET_TYPES:
            variant = package / f"{stem}_{kind}.py"
            if kind == DATASET_TYPE:
                variant.rename(package / f"{stem}.py")
            else:
                variant.unlink()
    for kind in DATASET_TYPES:
        variant = Path("tests") / f"test_data_{kind}.py"
        if kind == DATASET_TYPE:
            variant.rename("tests/test_data.py")
        else:
            variant.unlink()
    for name in IMAGE_ONLY if DATASET_TYPE == "tabular_csv" else TABULAR_ONLY:
        Path(name.replace("PKG", PACKAGE, 1)).unlink()
    if GPU != "multi":
        (package / "utils/distributed.py").unlink()
        Path("tests/test_distributed.py").unlink()
    if not USE_PREFETCH:
        (package / "data/prefetch.py").unlink()
        Path("tests/test_prefetch.py").unlink()
    if not USE_TENSORBOARD:
        (package / "utils/tensorboard.py").unlink()
        Path("tests/test_tensorboard.py").unlink()
    if not USE_GITHUB_ACTIONS:
        shutil.rmtree(".github")
    if LICENSE == "none":
        Path("LICENSE").unlink()
    for cache in Path(".").rglob("__pycache__"):
        shutil.rmtree(cache)

    print(
        f"\nCreated {SLUG}. Next:\n"
        f"  cd {SLUG}\n"
        '  python -m pip install -e ".[dev]"\n'
        "  python train.py              # trains on a generated sample dataset\n"
        "  python -m pytest             # the project's own tests\n"
    )


if __name__ == "__main__":
    main()
