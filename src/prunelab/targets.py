"""Check a config's `_target_`s before anything runs, without importing torch where possible."""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.machinery
import importlib.util
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prunelab.errors import PrunelabError


def targets(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (key path, `_target_` string) in a plain container, interpolations left out."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "_target_" and isinstance(value, str) and "${" not in value:
                yield where, value
            else:
                yield from targets(value, where)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from targets(value, f"{path}[{i}]")


def check_targets(cfg: Any) -> None:
    """Every `_target_` must name something importable (a typo fails only at instantiation).

    Found without importing where possible (see find_target): this check runs before torch
    loads, and importing torch alone takes over a second.
    """
    from omegaconf import OmegaConf

    for where, target in targets(OmegaConf.to_container(cfg, resolve=False)):
        hint = find_target(target)
        if hint is not None:
            raise PrunelabError(f"cannot import '{target}' ({where}){hint}")


def module_spec(name: str) -> importlib.machinery.ModuleSpec | None:
    """The spec of module `name`, found without importing it or its parent packages."""
    parts = name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])  # a top-level name imports nothing
        for i in range(1, len(parts)):
            if spec is None or spec.submodule_search_locations is None:
                return None
            spec = importlib.machinery.PathFinder.find_spec(
                ".".join(parts[: i + 1]), list(spec.submodule_search_locations)
            )
    except (ImportError, ValueError):
        return None
    return spec


def bound_names(source: str) -> tuple[set[str], bool]:
    """Names a module binds at top level, and whether that is all (no `*` import, no lazy
    `__getattr__` that may bind more at run time)."""
    names: set[str] = set()
    complete = True
    todo = list(ast.parse(source).body)
    while todo:
        stmt = todo.pop()
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            complete &= stmt.name != "__getattr__"  # a lazy module (PEP 562)
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for alias in stmt.names:
                complete &= alias.name != "*"
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets_ = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets_:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        else:  # names bound inside if/try/with/for blocks at module level count too
            for field in ("body", "orelse", "finalbody", "handlers"):
                todo.extend(getattr(stmt, field, []))
            if isinstance(stmt, ast.ExceptHandler) and stmt.name:
                names.add(stmt.name)
    return names, complete


def find_target(target: str) -> str | None:
    """None when `target` (module.attr[.attr...]) can be imported, else a hint ('' or
    '; did you mean ...?'). Reads the module's source; imports it only when that cannot tell."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the longest prefix that is a module
        spec = module_spec(".".join(parts[:cut]))
        if spec is not None:
            break
    else:
        return nearest_module(parts)
    module, attr = ".".join(parts[:cut]), parts[cut]
    names, complete = set(), False
    if spec.origin and spec.origin.endswith(".py") and spec.has_location:
        try:
            names, complete = bound_names(Path(spec.origin).read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            pass
    if attr not in names and not complete:  # an extension, `*` import or lazy module: import
        try:
            names = set(dir(importlib.import_module(module)))
        except Exception:  # noqa: BLE001 - any import failure means "cannot import"
            return ""
    if attr in names:
        return None  # attributes of that attribute (a class's method) are left to Hydra
    close = difflib.get_close_matches(attr, sorted(n for n in names if not n.startswith("_")), 1)
    return f"; did you mean '{'.'.join([module, close[0], *parts[cut + 1 :]])}'?" if close else ""


def nearest_module(parts: list[str]) -> str:
    """'; did you mean ...?' for the first missing module of `parts`, '' for no close match."""
    for i in range(1, len(parts)):
        parent = module_spec(".".join(parts[:i]))
        if parent is None or parent.submodule_search_locations is None:
            return ""
        siblings = [m.name for m in pkgutil.iter_modules(list(parent.submodule_search_locations))]
        if parts[i] not in siblings:
            close = difflib.get_close_matches(parts[i], siblings, n=1)
            fixed = [*parts[:i], close[0], *parts[i + 1 :]] if close else []
            return f"; did you mean '{'.'.join(fixed)}'?" if close else ""
    return ""
