"""The hooks: bad answers are refused by pre_gen_project.py, clearly and without
leftovers; post_gen_project.py honours every row of the variant table (`_files` in
cookiecutter.json) and the marker lines."""

import ast
import copy
import itertools
import json
import shutil
import sys
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config
from helpers import (
    COOKIECUTTER_JSON,
    FILES_TABLE,
    PACKAGE_DIR,
    TEMPLATE_DIR,
    TEMPLATE_PROJECT,
    chosen,
    default_answers,
    expected_files,
    explain,
    render,
    run,
    template_files,
)

HOOK = TEMPLATE_DIR / "hooks" / "pre_gen_project.py"
BAD_ANSWERS = [
    ("package_name", "1abc"),
    ("package_name", "class"),
    ("package_name", "torch"),
    ("package_name", "test"),
    ("package_name", "my-pkg"),
    ("package_name", "Yaml"),
    ("package_name", "predict"),
    ("project_slug", "My Project"),
    ("email", "not an address"),
    ("dataset_type", "video"),
    ("gpu", "tpu"),
    ("license", "GPL-3.0"),
]
CHOICE_KEYS = {"dataset_type", "gpu", "license"}
TASK_DATA = COOKIECUTTER_JSON["_task_data"]


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


@pytest.mark.parametrize(
    ("task", "dataset_type"),
    [
        (task, data)
        for task in TASK_DATA
        for data in COOKIECUTTER_JSON["dataset_type"]
        if data not in TASK_DATA[task]
    ],
)
def test_a_task_with_a_data_type_it_does_not_serve_is_refused(task, dataset_type, tmp_path, capfd):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FailedHookException):
        render(out, task=task, dataset_type=dataset_type)
    message = capfd.readouterr().err
    assert message.count("ERROR:") == 1, message  # one paragraph, naming both answers
    assert f"ERROR: task {task!r} does not go with dataset_type {dataset_type!r}" in message, (
        message
    )
    for name, types in TASK_DATA.items():  # and every valid pair
        assert f"{name} with {', '.join(types)}" in message, message
    assert list(out.iterdir()) == [], "a refused render left files behind"


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
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            str(TEMPLATE_DIR),
            "package_name=torch",
            "-o",
            str(tmp_path),
        ],
        cwd=tmp_path,
    )
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
        n
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "CHOICES"
    ]
    hook_choices = ast.literal_eval(node.value)
    listed = {k: v for k, v in COOKIECUTTER_JSON.items() if isinstance(v, list) and k[0] != "_"}
    assert hook_choices == listed


# --- post_gen_project.py: the variant table ----------------------------------------------

CHOICES = {k: v for k, v in COOKIECUTTER_JSON.items() if isinstance(v, list) and k[0] != "_"}
FLAGS = [k for k, v in COOKIECUTTER_JSON.items() if isinstance(v, bool)]
MARKERS = COOKIECUTTER_JSON["_markers"]  # marker name -> the answers that keep its lines


def every_combination():
    """Every combination of the answers the table may name (choices and yes/no)."""
    keys = [*CHOICES, *FLAGS]
    values = [*CHOICES.values(), *([True, False] for _ in FLAGS)]
    for combo in itertools.product(*values):
        answers = dict(zip(keys, combo, strict=True))
        if answers["dataset_type"] in TASK_DATA[answers["task"]]:  # the pairs the hook accepts
            yield answers


@pytest.mark.parametrize("name", sorted(FILES_TABLE))
def test_table_row_is_well_formed(name):
    row = FILES_TABLE[name]
    assert set(row) <= {"when", "as"} and row["when"], f"{name}: {row}"
    check_when(name, row["when"])


@pytest.mark.parametrize("name", sorted(MARKERS))
def test_marker_row_is_well_formed(name):
    assert MARKERS[name], name
    check_when(name, MARKERS[name])


def check_when(name, when):
    for key, value in when.items():
        if key in CHOICES:
            values = value if isinstance(value, list) else [value]
            assert values and set(values) <= set(CHOICES[key]), f"{name}: {key} {value!r}"
        else:
            assert key in FLAGS and isinstance(value, bool), f"{name}: {key} {value!r}"


def test_table_names_only_template_files():
    files = template_files()
    folders = {"/".join(f.split("/")[:end]) for f in files for end in range(1, f.count("/") + 1)}
    missing = sorted(name for name in FILES_TABLE if name not in files | folders)
    assert not missing, f"in the table, not in the template: {missing}"


def test_every_combination_gives_each_file_one_source():
    """No two chosen rows land on one name; a rename never replaces an unlisted file."""
    renamed_to = {row["as"] for row in FILES_TABLE.values() if "as" in row} - set(FILES_TABLE)
    clash = sorted(renamed_to & template_files())
    assert not clash, f"variants renamed onto files the template always ships: {clash}"
    for answers in every_combination():
        landed = [
            row.get("as", name)
            for name, row in FILES_TABLE.items()
            if chosen(row["when"], answers)
        ]
        assert len(landed) == len(set(landed)), f"{answers}: {sorted(landed)}"


def is_folder_row(name):
    return (TEMPLATE_PROJECT / name.replace("PKG", PACKAGE_DIR, 1)).is_dir()


# A template with the same hooks, cookiecutter.json and table, whose files each hold
# their own table path: a render shows which rows the hook kept, renamed and deleted.
MARKED = [
    "always = 1",
    *(f"{name} = 1  # {name}" for name in MARKERS),
    "    indented = 1    # use_prefetch",
]
NOT_MARKED = [
    "spaced = 1 # use_prefetch",  # one space: not a marker
    "unknown = 1  # use_nothing",  # not a marker of the table
    "# use_prefetch",  # no code before it
]


def marked_expected(answers, newline="\n"):
    """marked.py as rendered: each marked line kept (without its marker) or deleted."""
    on = [name for name, when in MARKERS.items() if chosen(when, answers)]
    kept = ["always = 1", *(f"{name} = 1" for name in on)]
    if chosen(MARKERS["use_prefetch"], answers):
        kept.append("    indented = 1")
    return newline.join([*kept, *NOT_MARKED, ""])


@pytest.fixture(scope="module")
def table_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("table-template")
    for name in ("cookiecutter.json", "local_extensions.py"):
        shutil.copy(TEMPLATE_DIR / name, root)
    shutil.copytree(TEMPLATE_DIR / "hooks", root / "hooks")
    project = root / TEMPLATE_PROJECT.name
    for name in ["README.md", "PKG/__init__.py", *FILES_TABLE]:
        path = project / name.replace("PKG", PACKAGE_DIR, 1)
        if name in FILES_TABLE and is_folder_row(name):
            path = path / "inside.txt"  # a folder row: the folder goes or stays whole
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name}\n", encoding="utf-8")
    for name, newline in (("marked.py", b"\n"), ("marked-crlf.txt", b"\r\n")):
        text = newline.join(line.encode() for line in [*MARKED, *NOT_MARKED, ""])
        (project / name).write_bytes(text)
    return root


def table_cases():
    """Each dataset_type x gpu, once with every yes/no answer yes, once with every one no; the
    experiment trackers in turn (each meets every gpu answer); a data type that serves several
    tasks takes them in turn (each meets the yes and the no answers)."""
    pairs = itertools.product(CHOICES["dataset_type"], CHOICES["gpu"], (True, False))
    trackers = itertools.cycle(CHOICES["experiment_tracker"])
    for i, ((dataset_type, gpu, yes), tracker) in enumerate(zip(pairs, trackers, strict=False)):
        license = "MIT" if yes else "none"
        flags = dict.fromkeys(FLAGS, yes)
        tasks = [task for task, types in TASK_DATA.items() if dataset_type in types]
        task = tasks[i % len(tasks)]  # 6 cases per data type: 3 tasks meet yes and no
        answers = {
            "dataset_type": dataset_type,
            "task": task,
            "gpu": gpu,
            "license": license,
            **flags,
        }
        yield answers | {"experiment_tracker": tracker}


TABLE_CASES = [default_answers() | case for case in table_cases()]


def case_id(answers):
    flags = "yes" if answers["use_prefetch"] else "no"
    names = [answers[key] for key in ("dataset_type", "task", "gpu")]
    return "-".join([*names, flags, answers["experiment_tracker"]])


def test_table_cases_meet_every_row_both_ways():
    for name, row in FILES_TABLE.items():
        outcomes = {chosen(row["when"], answers) for answers in TABLE_CASES}
        assert outcomes == {True, False}, (
            f"the cases never {'delete' if True in outcomes else 'keep'} {name}"
        )


@pytest.mark.parametrize("answers", TABLE_CASES, ids=case_id)
def test_hook_honours_the_table_and_the_markers(answers, table_template, tmp_path):
    out = cookiecutter(
        str(table_template),
        no_input=True,
        extra_context={**answers, "project_name": "Table Test"},
        output_dir=tmp_path,
    )
    project, package = Path(out), "table_test"
    found = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    template = table_template / TEMPLATE_PROJECT.name
    assert found == expected_files(answers, package, template=template)
    for name, row in FILES_TABLE.items():
        if chosen(row["when"], answers) and not is_folder_row(name):
            # The chosen variant sits under its rendered name, not another variant.
            target = project / row.get("as", name).replace("PKG", package, 1)
            assert target.read_text(encoding="utf-8") == f"{name}\n", name
    assert (project / "marked.py").read_bytes().decode() == marked_expected(answers)
    crlf = (project / "marked-crlf.txt").read_bytes().decode()
    assert crlf == marked_expected(answers, newline="\r\n")
