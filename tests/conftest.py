"""Session setup shared by all template tests."""

import json
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_cookiecutter_config(tmp_path_factory):
    """Keep cookiecutter's replay files and clones out of ~ (and apart per xdist worker)."""
    home = tmp_path_factory.mktemp("cookiecutter-home")
    config = home / "config.yaml"
    config.write_text(
        f"cookiecutters_dir: {json.dumps(str(home / 'cookiecutters'))}\n"
        f"replay_dir: {json.dumps(str(home / 'replay'))}\n",
        encoding="utf-8",
    )
    old = os.environ.get("COOKIECUTTER_CONFIG")
    os.environ["COOKIECUTTER_CONFIG"] = str(config)
    yield
    if old is None:
        del os.environ["COOKIECUTTER_CONFIG"]
    else:
        os.environ["COOKIECUTTER_CONFIG"] = old


def scope_rank(item) -> int:
    """Longest first: a gpu=multi project (its own suite runs torchrun), another image project,
    a tabular project, the benchmarks, then everything short."""
    answers = getattr(item.cls, "answers", None)
    if answers is not None:
        if answers["gpu"] == "multi":
            return 0
        return 2 if answers["dataset_type"] == "tabular_csv" else 1
    return 3 if item.path.name == "test_benchmarks.py" else 4


def pytest_collection_modifyitems(items):
    """xdist hands out whole scopes (a project class, a module) in collection order, and pyproject
    turns off its own reordering by test count: with the longest scopes first, the short ones
    fill the gaps at the end instead of one long project running alone."""
    items.sort(key=scope_rank)  # stable: each scope keeps its order, the table keeps its own
