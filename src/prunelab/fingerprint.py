"""Fingerprints of the code and library versions behind a cached result.

A cache key made of the config alone would hand back a baseline trained, or evaluated, by code
that has since changed; hashing the source that produced it retires such entries by itself.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
from pathlib import Path
from types import ModuleType
from typing import Any


def _source(obj: Any) -> str:
    """The source of a function or class, of a module, or of every .py file of a package."""
    if isinstance(obj, ModuleType) and hasattr(obj, "__path__"):
        files = sorted(p for d in obj.__path__ for p in Path(d).rglob("*.py"))
        return "".join(f"# {p.name}\n{p.read_text()}" for p in files)
    return inspect.getsource(obj)


def code_fingerprint(*objects: Any) -> str:
    """A short hash of the source of `objects` (functions, classes, modules or packages)."""
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(_source(obj).encode())
    return digest.hexdigest()[:16]


def content_hash(material: Any) -> str:
    """A short hash of JSON-able `material` (key order does not matter)."""
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:12]


def versions(*distributions: str) -> dict[str, str]:
    """Installed versions of `distributions` ('missing' where one is not installed)."""
    out = {}
    for name in distributions:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out
