"""Code identity by content: a digest of exactly the library code a command runs.

A rule passes ``code_digest(...)`` to its job as a parameter, so Snakemake reruns the job when
that code changes and only then: ``touch``, a ``git checkout`` of the same content, a fresh
clone next to copied results or a workspace moved elsewhere rerun nothing, and neither do
comments, docstrings, help texts or formatting (the digest is of each module's syntax tree
without them). The code a command runs is found statically: the ``whitebox`` modules its
module imports, transitively (imports inside functions count; ``importlib`` by name does
not). Model and augmentation modules are imported by their registries by name, so a job's
digest adds the module that registers its model (``@register_model("name")``) and those of
models its ``model_args`` name (an INH head on a ``backbone``), and a training job's the
modules that register the augmentations its ``training.augment`` names
(``@register_augmentation("name")``): editing one model or augmentation retrains only the
experiments that use it.

Pure Python (no torch). Each file's analysis is cached by the sha256 of its source in
``~/.cache/whitebox/code-identity.json``, so a Snakemake start hashes files and parses none.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "whitebox"
SOURCE_ROOT = Path(__file__).resolve().parent  # src/whitebox
# Decorators that register a function by name -> the package whose modules they are found in.
REGISTER_MODEL, REGISTER_AUGMENTATION = "register_model", "register_augmentation"
REGISTRIES = {REGISTER_MODEL: "models", REGISTER_AUGMENTATION: "augmentations"}
AUGMENTING = f"{PACKAGE}.augmentations.registry"  # augment_batch, which imports augmentations by name
CACHE_NAME = "code-identity.json"  # under $XDG_CACHE_HOME/whitebox (or ~/.cache/whitebox)
CACHE_LIMIT = 4096  # analyses kept; the oldest go first
ANALYSIS_VERSION = "3"  # part of every cache key: a new analysis never reads an old one
PROSE_KEYWORDS = ("help", "description")


def module_file(module: str) -> Path | None:
    """The source file of ``whitebox.a.b`` (``a/b.py`` or ``a/b/__init__.py``), or None."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = SOURCE_ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _without_prose(tree: ast.AST) -> ast.AST:
    """``tree`` without docstrings and without the text of ``help=``/``description=`` keyword
    arguments (a command's help): rewording them changes no result."""
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in PROSE_KEYWORDS \
                and isinstance(node.value, ast.Constant | ast.JoinedStr):
            node.value = ast.Constant("")
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _registration(node: ast.AST) -> tuple[str, str] | None:
    """``(decorator, name)`` of a ``@register_model("name")`` (or another decorator of
    ``REGISTRIES``), else None."""
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        for decorator in (getattr(node.func, "id", None), getattr(node.func, "attr", None)):
            if decorator in REGISTRIES:
                return decorator, node.args[0].value
    return None


def _analyse(source: bytes) -> dict:
    """What one module's source says: its imports (level, module, names), the digest of its
    syntax tree without prose (``_without_prose``) and the names it registers, by decorator."""
    tree = ast.parse(source)
    imports, registers = [], {decorator: [] for decorator in REGISTRIES}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports += [[0, alias.name, []] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imports.append([node.level, node.module or "", [alias.name for alias in node.names]])
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            for found in filter(None, map(_registration, node.decorator_list)):
                registers[found[0]].append(found[1])
    digest = hashlib.sha256(ast.dump(_without_prose(tree)).encode()).hexdigest()
    return {"imports": imports, "digest": digest, "registers": registers}


def _cache_file() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "whitebox" / CACHE_NAME


@functools.cache
def _disk_cache() -> dict:
    """Analyses by sha256 of the source (so a stale entry cannot exist), from earlier runs."""
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _save_disk_cache() -> None:
    cache, path = _disk_cache(), _cache_file()
    for key in list(cache)[:max(0, len(cache) - CACHE_LIMIT)]:
        del cache[key]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: analyse again next time


@functools.cache
def _summary(path: Path) -> dict:
    source = path.read_bytes()
    key = f"{ANALYSIS_VERSION}:{hashlib.sha256(source).hexdigest()}"
    cache = _disk_cache()
    if key not in cache:
        cache[key] = _analyse(source)
        _save_disk_cache()
    return cache[key]


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def imported_modules(module: str) -> set[str]:
    """The ``whitebox`` modules that importing ``module`` executes directly: its own imports
    (anywhere in the file) and their parent packages."""
    path = module_file(module)
    if path is None:
        return set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set(_with_parents(package))
    for level, source, names in _summary(path)["imports"]:
        if level:  # relative: from ..x import y
            parts = package.split(".")
            source = ".".join(parts[: len(parts) - level + 1] + ([source] if source else []))
        # ``from a import b`` imports the module a.b when there is one.
        for name in [source, *(f"{source}.{alias}" for alias in names)]:
            if name.split(".")[0] == PACKAGE:
                found.update(m for m in _with_parents(name) if module_file(m) is not None)
    found.discard(module)
    return found


def closure(modules: Iterable[str]) -> set[str]:
    """``modules`` and every ``whitebox`` module they import, transitively."""
    seen: set[str] = set()
    todo = [m for m in modules if module_file(m) is not None]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(imported_modules(module) - seen)
    return seen


@functools.cache
def registered(decorator: str) -> dict[str, str]:
    """``{name: module}`` of every ``@decorator("name")`` in the modules of its package
    (``REGISTRIES``), in file order, then in order within a file."""
    package = REGISTRIES[decorator]
    return {name: f"{PACKAGE}.{package}.{path.stem}"
            for path in sorted((SOURCE_ROOT / package).glob("*.py"))
            for name in _summary(path)["registers"][decorator]}


def registered_models() -> dict[str, str]:
    """``{model name: module}`` of every ``@register_model("name")`` under whitebox/models/."""
    return registered(REGISTER_MODEL)


def registered_augmentations() -> dict[str, str]:
    """``{augmentation name: module}`` of every ``@register_augmentation("name")`` under
    whitebox/augmentations/."""
    return registered(REGISTER_AUGMENTATION)


def model_modules(model: str, model_args: dict | None = None) -> list[str]:
    """The modules that register ``model`` and every registered model ``model_args`` names."""
    registry = registered_models()
    names = [model, *(v for v in _strings(model_args or {}) if v in registry)]
    return sorted({registry[name] for name in names if name in registry})


def augmentation_modules(names: Iterable[str]) -> list[str]:
    """The modules that register the augmentations ``names`` (a spec's ``training.augment``)."""
    registry = registered_augmentations()
    return sorted({registry[name] for name in names if name in registry})


def run_modules(roots: Iterable[str], model: str, model_args: dict | None = None,
                augment: Iterable[str] = ()) -> list[str]:
    """``roots`` (what a command runs) and what it imports by name for one run: the modules of
    its model (``model_modules``) and, where the command augments batches (its closure holds
    ``augment_batch``), of the augmentations ``augment`` (its ``training.augment``) names."""
    modules = [*roots, *model_modules(model, model_args)]
    if AUGMENTING in closure(modules):
        modules += augmentation_modules(augment)
    return modules


def _strings(value) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


@functools.cache
def _digest(modules: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for module in sorted(closure(modules)):
        digest.update(f"{module}:{_summary(module_file(module))['digest']}\n".encode())
    return digest.hexdigest()[:16]


def code_digest(modules: Iterable[str]) -> str:
    """16 hex digits of the code that ``modules`` run (they and what they import)."""
    return _digest(tuple(sorted(set(modules))))
