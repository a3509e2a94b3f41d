"""cruft keeps generated projects linked to the template: create, link, check, diff, update.

Offline: the template's working tree (tracked and untracked files, not what .gitignore
ignores) is committed to a throwaway git repository, and cruft clones that.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import TEMPLATE_DIR

pytestmark = [
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
    pytest.mark.skipif(importlib.util.find_spec("cruft") is None, reason="needs cruft"),
]

ANSWERS = {"project_name": "Cruft Demo", "dataset_type": "torchvision", "gpu": "none"}
DERIVED = {"project_slug": "cruft-demo", "package_name": "cruft_demo"}
TEMPLATE_CHANGE = "A line the template added after the project was created."


@pytest.fixture(scope="session")
def git_env():
    """A git identity and no user/system git config: the machine's settings do not matter."""
    env = dict(os.environ)
    env.update(
        GIT_AUTHOR_NAME="Template Tests",
        GIT_AUTHOR_EMAIL="template-tests@example.com",
        GIT_COMMITTER_NAME="Template Tests",
        GIT_COMMITTER_EMAIL="template-tests@example.com",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
    )
    env.pop("PYTEST_ADDOPTS", None)
    return env


def sh(args, cwd, env, check=True):
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert proc.returncode == 0, (
            f"`{' '.join(proc.args)}` exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def cruft(*args, cwd, env, check=True):
    # Running `python -m cruft` with this interpreter is also how COOKIECUTTER_CONFIG
    # (conftest.py) reaches it: cruft reads the user config through cookiecutter.
    if "COOKIECUTTER_CONFIG" in os.environ:
        env = {**env, "COOKIECUTTER_CONFIG": os.environ["COOKIECUTTER_CONFIG"]}
    return sh([sys.executable, "-m", "cruft", *args], cwd=cwd, env=env, check=check)


def commit_all(repo, env, message):
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "--no-verify", "-m", message], repo, env)
    return sh(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()


def template_files():
    """Paths of the template's working tree, relative, as git would commit them."""
    proc = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=TEMPLATE_DIR,
        capture_output=True,
        text=True,
    )
    if proc.returncode == 0:
        names = [name for name in proc.stdout.split("\0") if name]
    else:  # not a git checkout (an unpacked archive): everything but caches
        skip = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".venv", "venv"}
        names = [
            p.relative_to(TEMPLATE_DIR).as_posix()
            for p in TEMPLATE_DIR.rglob("*")
            if not skip & set(p.relative_to(TEMPLATE_DIR).parts)
        ]
    return [name for name in names if (TEMPLATE_DIR / name).is_file()]  # not deleted ones


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory, git_env):
    """A git repository holding a copy of the template as it is now, one commit."""
    repo = tmp_path_factory.mktemp("template-repo") / "pytorch-template"
    for name in template_files():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE_DIR / name, target)
    sh(["git", "init", "-q", "-b", "main"], repo, git_env)
    commit_all(repo, git_env, "template")
    return repo


def head(repo, env):
    return sh(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()


def create(template, out, env):
    out.mkdir(parents=True, exist_ok=True)
    cruft(
        "create",
        template,
        "--no-input",
        "--output-dir",
        out,
        "--extra-context",
        json.dumps(ANSWERS),
        cwd=out,
        env=env,
    )
    return out / DERIVED["project_slug"]


@pytest.fixture(scope="module")
def created(template_repo, tmp_path_factory, git_env):
    return create(template_repo, tmp_path_factory.mktemp("created"), git_env)


def read_state(project):
    return json.loads((project / ".cruft.json").read_text(encoding="utf-8"))


def test_create_records_template_commit_and_answers(created, template_repo, git_env):
    state = read_state(created)
    assert state["template"] == str(template_repo)
    assert state["commit"] == head(template_repo, git_env)
    assert state["checkout"] is None
    context = state["context"]["cookiecutter"]
    assert {key: context[key] for key in {**ANSWERS, **DERIVED}} == {**ANSWERS, **DERIVED}
    assert context["_commit"] == state["commit"]
    # The post-generation hook ran: only the chosen data variant is left.
    assert (created / DERIVED["package_name"] / "data" / "dataset.py").is_file()
    assert not (created / DERIVED["package_name"] / "data" / "dataset_image_folder.py").exists()


def test_check_and_diff_are_clean_right_after_create(created, git_env):
    proc = cruft("check", "--project-dir", created, cwd=created, env=git_env)
    assert "up to date" in proc.stdout
    # Regenerating from the recorded commit and answers gives the project back exactly.
    proc = cruft("diff", "--exit-code", "--project-dir", created, cwd=created, env=git_env)
    assert "diff --git" not in proc.stdout


def test_link_a_plain_cookiecutter_project(template_repo, tmp_path, git_env):
    """Rendered with cookiecutter, linked afterwards with the answers the project recorded."""
    from cookiecutter.config import get_user_config
    from cookiecutter.main import cookiecutter

    answers = {**ANSWERS, "dataset_type": "image_list", "license": "none"}
    project = cookiecutter(
        str(template_repo), no_input=True, extra_context=answers, output_dir=str(tmp_path)
    )
    # The project keeps every answer (none of cookiecutter's private keys), the same
    # ones cookiecutter's replay file holds.
    recorded = json.loads(
        (tmp_path / DERIVED["project_slug"] / ".template-answers.json").read_text("utf-8")
    )
    replay = get_user_config()["replay_dir"]
    with open(os.path.join(replay, f"{template_repo.name}.json"), encoding="utf-8") as f:
        replayed = {k: v for k, v in json.load(f)["cookiecutter"].items() if not k.startswith("_")}
    assert recorded == replayed
    assert {key: recorded[key] for key in {**answers, **DERIVED}} == {**answers, **DERIVED}

    cruft(
        "link",
        template_repo,
        "--project-dir",
        project,
        "--no-input",
        "--extra-context",
        json.dumps(recorded),
        cwd=project,
        env=git_env,
    )
    state = read_state(tmp_path / DERIVED["project_slug"])
    assert state["commit"] == head(template_repo, git_env)
    assert {key: state["context"]["cookiecutter"][key] for key in answers} == answers
    cruft("check", "--project-dir", project, cwd=project, env=git_env)
    # The right answers were recorded: regenerating them gives the project back.
    proc = cruft("diff", "--exit-code", "--project-dir", project, cwd=project, env=git_env)
    assert "diff --git" not in proc.stdout


def test_update_brings_a_template_change_into_the_project(template_repo, tmp_path, git_env):
    # A template of its own (a clone), as this test commits to it.
    template = tmp_path / "template"
    sh(["git", "clone", "-q", template_repo, template], tmp_path, git_env)
    project = create(template, tmp_path / "out", git_env)
    sh(["git", "init", "-q", "-b", "main"], project, git_env)
    # The project's own change, which the update must keep.
    with open(project / ".gitignore", "a", encoding="utf-8") as f:
        f.write("/scratch/\n")
    commit_all(project, git_env, "project from the template, plus a local change")

    readme = template / "{{cookiecutter.project_slug}}" / "README.md"
    with open(readme, "a", encoding="utf-8") as f:
        f.write(f"\n{TEMPLATE_CHANGE}\n")
    new_commit = commit_all(template, git_env, "template change")

    proc = cruft("check", "--project-dir", project, cwd=project, env=git_env, check=False)
    assert proc.returncode == 1 and "out of date" in proc.stdout, proc.stdout + proc.stderr

    cruft(
        "update",
        "--project-dir",
        project,
        "--skip-apply-ask",
        "--allow-untracked-files",
        cwd=project,
        env=git_env,
    )
    assert TEMPLATE_CHANGE in (project / "README.md").read_text(encoding="utf-8")
    assert "/scratch/" in (project / ".gitignore").read_text(encoding="utf-8")
    assert read_state(project)["commit"] == new_commit
    cruft("check", "--project-dir", project, cwd=project, env=git_env)
