"""Bad answers are refused by hooks/pre_gen_project.py, clearly and without leftovers."""

import ast
import copy
import json
import sys

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config
from helpers import COOKIECUTTER_JSON, TEMPLATE_DIR, explain, render, run

HOOK = TEMPLATE_DIR / "hooks" / "pre_gen_project.py"
BAD_ANSWERS = [
    ("package_name", "1abc"),
    ("package_name", "class"),
    ("package_name", "torch"),
    ("package_name", "test"),
    ("package_name", "my-pkg"),
    ("package_name", "Yaml"),
    ("project_slug", "My Project"),
    ("email", "not an address"),
    ("dataset_type", "video"),
    ("gpu", "tpu"),
    ("license", "GPL-3.0"),
]
CHOICE_KEYS = {"dataset_type", "gpu", "license"}


def assert_refused(message, key, value, output_dir):
    assert f"ERROR: {key} {value!r}" in message, message
    assert list(output_dir.iterdir()) == [], "a refused render left files behind"


def replay_file(tmp_path, **answers):
    """A replay file with every answer: cookiecutter replays it without checking choices."""
    context = {"cookiecutter": copy.deepcopy(COOKIECUTTER_JSON)}
    cookie = prompt_for_config(context, no_input=True)  # defaults, as --no-input renders them
    cookie.update(answers)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"cookiecutter": cookie}), encoding="utf-8")
    return path


@pytest.mark.parametrize(("key", "value"), BAD_ANSWERS, ids=str)
def test_bad_answer_is_refused(key, value, tmp_path, capfd):
    out = tmp_path / "out"
    out.mkdir()
    if key in CHOICE_KEYS:
        # cookiecutter itself rejects a bad choice on its command line...
        with pytest.raises(ValueError, match=value):
            render(out, **{key: value})
        assert list(out.iterdir()) == []
        # ...but not one read from a replay file: then the hook must catch it.
        replay = str(replay_file(tmp_path, **{key: value}))
        with pytest.raises(FailedHookException):
            cookiecutter(str(TEMPLATE_DIR), replay=replay, output_dir=out)
    else:
        with pytest.raises(FailedHookException):
            render(out, **{key: value})
    assert_refused(capfd.readouterr().err, key, value, out)


@pytest.mark.parametrize("value", ["maybe", "false", 1])
def test_yes_no_answer_must_be_a_bool(value, tmp_path, capfd):
    # On the command line cookiecutter converts yes/no/true/false/1/0 itself; a replay
    # file or another tool can pass anything, and the string "false" would be truthy.
    out = tmp_path / "out"
    out.mkdir()
    replay = str(replay_file(tmp_path, use_prefetch=value))
    with pytest.raises(FailedHookException):
        cookiecutter(str(TEMPLATE_DIR), replay=replay, output_dir=out)
    assert_refused(capfd.readouterr().err, "use_prefetch", value, out)


def test_bad_answer_message_via_cli(tmp_path):
    proc = run(
        [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE_DIR),
         "package_name=torch", "-o", str(tmp_path)],
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode != 0, explain(proc)
    assert "ERROR: package_name 'torch' would shadow" in proc.stderr, explain(proc)
    assert list(tmp_path.iterdir()) == []


def test_quotes_in_answers_do_not_break_the_hook(tmp_path, capfd):
    # Rendered into the hook with |tojson: quotes and backslashes stay data.
    tricky = "x\"); import os; os._exit(0)  # '''\\"
    with pytest.raises(FailedHookException):
        render(tmp_path, project_slug=tricky)
    assert_refused(capfd.readouterr().err, "project_slug", tricky, tmp_path)


def test_hook_choices_match_cookiecutter_json():
    # The hook lists the valid choices itself (its cwd is not the template):
    # they must be exactly the lists in cookiecutter.json.
    tree = ast.parse(HOOK.read_text(encoding="utf-8"))  # the Jinja lines parse as Python too
    (node,) = [
        n for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "CHOICES"
    ]  # fmt: skip
    hook_choices = ast.literal_eval(node.value)
    listed = {k: v for k, v in COOKIECUTTER_JSON.items() if isinstance(v, list) and k[0] != "_"}
    assert hook_choices == listed
