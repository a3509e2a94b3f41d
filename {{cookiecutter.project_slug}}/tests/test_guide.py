"""docs/GUIDE.md: every link points at a file and a symbol that exist, and its code snippets really work.

A link whose text is a `symbol` in backticks must name something defined at module level in
the .py file it points at (`Class.method` for a method), or a dotted key of the .yaml file.
"""

import ast
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml
from conftest import fast_overrides

from {{ cookiecutter.package_name }} import models
from {{ cookiecutter.package_name }}.checkpoint import load_checkpoint
from {{ cookiecutter.package_name }}.config import load_config
from {{ cookiecutter.package_name }}.data import build_dataloaders, loaders
from {{ cookiecutter.package_name }}.engine import Trainer, build_optimizer, build_scheduler
from {{ cookiecutter.package_name }}.models import layers, registry
from {{ cookiecutter.package_name }}.task import build_criterion

PROJECT_DIR = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(models.__file__).resolve().parent.parent
DOCS_DIR = PROJECT_DIR / "docs"
GUIDE = DOCS_DIR / "GUIDE.md"

OWN_DATASET = "Your own dataset in under ten lines"
OWN_MODEL = "Your own model in under ten lines"
MAX_SNIPPET_LINES = 9  # under ten

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
SYMBOL = re.compile(r"`([A-Za-z_][\w.]*)`")
HEADING = re.compile(r"^(#{1,6}) (.+)$", re.MULTILINE)


def guide_text() -> str:
    return GUIDE.read_text(encoding="utf-8")


def sections() -> dict[str, str]:
    """`## ` heading -> the text up to the next one."""
    parts = re.split(r"^## (.+)$", guide_text(), flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def links(text: str) -> list[tuple[str, str]]:
    """(text, target) of every markdown link outside fenced code blocks."""
    return LINK.findall(FENCE.sub("", text))


def python_blocks(section: str) -> list[str]:
    return [code for lang, code in FENCE.findall(sections()[section]) if lang == "python"]


def snippet(section: str) -> str:
    blocks = python_blocks(section)
    assert len(blocks) == 1, f"section {section!r} should hold exactly one python code block, found {len(blocks)}"
    return blocks[0]


def module_names(body: list[ast.stmt]) -> dict[str, ast.AST]:
    """Names a module (or class) body defines: functions, classes, assignments, also under if/try/with."""
    names = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        names[leaf.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, block, []):
                    inner = child.body if isinstance(child, ast.ExceptHandler) else [child]
                    names.update(module_names(inner))
    return names


def python_symbol_error(path: Path, symbol: str) -> str | None:
    """None if `symbol` (`name` or `Class.attr`) is defined in the file, else what is wrong."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    scope, where = tree.body, path.name
    for part in symbol.split("."):
        names = module_names(scope)
        if part not in names:
            return f"{part!r} is not defined in {where} (defined there: {', '.join(sorted(names)) or 'nothing'})"
        node = names[part]
        scope, where = getattr(node, "body", []), f"{where}:{part}"
    return None


def yaml_key_error(path: Path, key: str) -> str | None:
    node = yaml.safe_load(path.read_text(encoding="utf-8"))
    for i, part in enumerate(key.split(".")):
        if not isinstance(node, dict) or part not in node:
            here = ".".join(key.split(".")[:i]) or "the top level"
            keys = ", ".join(node) if isinstance(node, dict) else "none"
            return f"no key {part!r} under {here} in {path.name} (keys there: {keys})"
        node = node[part]
    return None


def anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of a markdown file's headings."""
    slugs = set()
    for _, title in HEADING.findall(FENCE.sub("", markdown)):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        slugs.add(slug)
    return slugs


# ---- structure ------------------------------------------------------------------


def test_guide_is_rendered():
    text = guide_text()
    for marker in ("{" + "{", "{" + "%", "{" + "#"):  # spelt in two halves: this file is a template too
        assert marker not in text, f"GUIDE.md still contains the template marker {marker!r}"


def test_every_section_links_to_the_code():
    assert len(sections()) >= 10
    for title, body in sections().items():
        targets = [target.split("#")[0] for _, target in links(body)]
        assert any(target.endswith(".py") for target in targets), f"section {title!r} has no link to a .py file"


def test_every_module_of_the_package_is_linked():
    """A new, renamed or removed module shows up here: the guide covers the layout as rendered."""
    linked = {(DOCS_DIR / target.split("#")[0]).resolve() for _, target in links(guide_text())}
    modules = [p for p in sorted(PACKAGE_DIR.rglob("*.py")) if p.name != "__init__.py"]
    missing = [p.relative_to(PROJECT_DIR).as_posix() for p in modules if p.resolve() not in linked]
    assert missing == [], f"modules GUIDE.md never links to: {missing}"


@pytest.mark.parametrize("section", [OWN_DATASET, OWN_MODEL])
def test_own_code_snippets_are_short_python(section):
    assert section in sections(), f"GUIDE.md has no section {section!r}"
    code = snippet(section)
    lines = [line for line in code.splitlines() if line.strip()]  # not the blank lines ruff format adds
    assert len(lines) <= MAX_SNIPPET_LINES, f"{section!r}: {len(lines)} lines of code, at most {MAX_SNIPPET_LINES}"
    ast.parse(code)


# ---- links ----------------------------------------------------------------------


def test_guide_has_links():
    assert len(links(guide_text())) >= 20


@pytest.mark.parametrize("text, target", sorted(set(links(guide_text()))))
def test_link_target_exists(text, target):
    if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
        return
    path, _, anchor = target.partition("#")
    file = (DOCS_DIR / path).resolve() if path else GUIDE
    assert file.is_file(), f"[{text}]({target}): {file} does not exist"
    assert file.is_relative_to(PROJECT_DIR), f"[{text}]({target}) points outside the project"
    if anchor and file.suffix == ".md":
        assert anchor in anchors(file.read_text(encoding="utf-8")), f"[{text}]({target}): no heading #{anchor}"
    symbol = SYMBOL.fullmatch(text)
    if symbol is None:
        return
    if file.suffix == ".py":
        error = python_symbol_error(file, symbol.group(1))
    elif file.suffix in (".yaml", ".yml"):
        error = yaml_key_error(file, symbol.group(1))
    else:
        error = "a `symbol` link must point at a .py or a .yaml file"
    assert error is None, f"[{text}]({target}): {error}"


def test_the_checks_catch_broken_links():
    """The checkers themselves: a wrong symbol, a wrong method or a wrong key is reported."""
    engine = PACKAGE_DIR / "engine.py"
    config = PROJECT_DIR / "configs" / "default.yaml"
    assert python_symbol_error(Path(layers.__file__), "init_weights") is None
    assert python_symbol_error(Path(layers.__file__), "init_weight") is not None
    assert python_symbol_error(engine, "Trainer.fit") is None
    assert python_symbol_error(engine, "Trainer.no_such_method") is not None
    assert yaml_key_error(config, "trainer.epochs") is None
    assert yaml_key_error(config, "trainer.epoch") is not None
    assert yaml_key_error(config, "seed.value") is not None
    markdown = "# Title\n## The shape of the code\n```\n## not a heading\n```\n"
    assert anchors(markdown) == {"title", "the-shape-of-the-code"}


# ---- the snippets run, on the tiny dataset's own info and inputs (tests/tiny_data.py) ---------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, data_root):
    """(data_info, train inputs, val inputs) of the tiny dataset, as the models get them."""
    cfg = load_config(overrides=fast_overrides(tmp_path_factory.mktemp("guide"), data_root))
    train_loader, val_loader, info = build_dataloaders(cfg)
    return info, *(torch.cat([inputs for inputs, _ in loader]) for loader in (train_loader, val_loader))


def register_own_model(monkeypatch) -> str:
    """Run the guide's model code as if appended to models/registry.py; return the name it registers."""
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))  # build_model sees additions; restored after
    before = set(models.MODELS)
    # registry.py's own names, and the two imports the guide says to add
    namespace = {**vars(registry), "MODELS": models.MODELS, "nn": nn, "init_weights": layers.init_weights}
    exec(snippet(OWN_MODEL), namespace)
    added = set(models.MODELS) - before
    assert len(added) == 1, f"the model snippet should register one model in MODELS, registered {sorted(added)}"
    return added.pop()


@pytest.mark.parametrize("init", ["kaiming_normal", "default"])
def test_own_model_snippet_builds_and_runs(make_config, monkeypatch, tiny, init):
    info, inputs, _ = tiny
    name = register_own_model(monkeypatch)
    model = models.build_model(make_config(**{"model.name": name, "model.init": init}), info)
    weights = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert weights, "the model snippet has no Conv2d/Linear layer"
    biases = [m.bias for m in weights if m.bias is not None]
    # The init scheme ran at the end of __init__: named schemes zero the biases, `default` keeps PyTorch's.
    zeroed = [bool((b == 0).all()) for b in biases]
    assert zeroed == [init != "default"] * len(biases), f"model.init={init} did not reach every layer: {zeroed}"
    names_before = list(model.state_dict())
    out = model(inputs[:4])
    assert out.shape == (4, info["num_outputs"])
    assert list(model.state_dict()) == names_before, "forward created layers"
    out.logsumexp(dim=1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def own_labels(inputs: torch.Tensor) -> torch.Tensor:
    """The guide's example labels for `inputs`, as its dataset snippet reads them from `<split>.pt`."""
    return torch.arange(len(inputs)) % 2  # classification
    return torch.stack([inputs[:, 0] * 40 + 250, torch.arange(len(inputs)) * -0.5], 1).double()  # 2 targets  # regression
    return torch.stack([inputs[:, 0] > 0, torch.arange(len(inputs)) % 3 == 0], 1).float()  # 2 labels, 0/1  # multilabel


TASK_KEYS = {"classes", "num_outputs"}  # classification
TASK_KEYS = {"targets", "num_outputs"}  # regression
TASK_KEYS = {"labels", "num_outputs", "label_counts", "train_samples"}  # multilabel


def test_own_dataset_and_model_train_one_epoch(tmp_path, make_config, monkeypatch, tiny):
    """The two snippets together, through build_dataloaders, Trainer.fit and a checkpoint reload."""
    namespace = {"__name__": "own_dataset"}
    exec(snippet(OWN_DATASET), namespace)
    monkeypatch.setattr(loaders, "build_datasets", namespace["build_datasets"])
    name = register_own_model(monkeypatch)

    # The guide's example data: the tiny dataset's inputs and labels of the task, one file per split.
    tiny_info, *splits = tiny
    root = tmp_path / "mine"
    root.mkdir()
    for split, inputs in zip(("train", "val"), splits, strict=True):
        torch.save((inputs, own_labels(inputs)), root / f"{split}.pt")

    cfg = make_config(**{"data.root": str(root), "model.name": name})
    train_loader, val_loader, info = build_dataloaders(cfg)
    assert info["num_outputs"] == 2 and set(info) >= TASK_KEYS
    for key in set(info) - TASK_KEYS:  # the sizes the model is built for
        assert info[key] == tiny_info[key], f"the dataset snippet's data_info[{key!r}] does not match its inputs"
    inputs, labels = next(iter(train_loader))
    assert inputs.dtype == torch.float32
    assert labels.dtype == torch.int64 and labels.shape == (len(inputs),)  # classification
    assert labels.dtype == torch.float32 and labels.shape == (len(inputs), 2)  # regression
    assert labels.dtype == torch.float32 and labels.shape == (len(inputs), 2)  # multilabel
    assert torch.equal(train_loader.dataset.tensors[1], own_labels(splits[0]))  # 0/1 as saved  # multilabel
    assert info["label_counts"] == own_labels(splits[0]).sum(0).int().tolist()  # trainer.class_weights  # multilabel
    raw = own_labels(splits[0])  # in units: the snippet learns each column's mean and std from train  # regression
    stats = [torch.tensor([t[key] for t in info["targets"]], dtype=torch.float64) for key in ("mean", "std")]  # regression
    torch.testing.assert_close(stats, [raw.mean(0), raw.std(0, correction=0)])  # regression
    scaled = train_loader.dataset.tensors[1].double()  # what the model learns: mean 0, std 1  # regression
    assert scaled.mean(0).abs().max() < 1e-5 and (scaled.std(0, correction=0) - 1).abs().max() < 1e-5  # regression

    model = models.build_model(cfg, info)
    optimizer = build_optimizer(cfg, model)
    run_dir = tmp_path / "run"
    trainer = Trainer(
        cfg,
        model,
        build_criterion(cfg, info),
        optimizer,
        build_scheduler(cfg, optimizer),
        train_loader,
        val_loader,
        info,
        run_dir,
        "cpu",
    )
    history = trainer.fit()
    assert len(history) == 1 and math.isfinite(history[0]["train_loss"])

    # Resume / evaluate.py path: the checkpoint's data_info comes back unchanged.
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    _, _, info_again = build_dataloaders(cfg, state["data_info"])
    assert info_again == info
