"""Atomic writes for the report's files: no half-written file ever carries a final name."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from prunelab.io import FILE_MODE


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call write(temp_path) on a temp file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE)  # mkstemp's 0600 would hide reports from the rest of the team
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
