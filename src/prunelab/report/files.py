"""Atomic writes for the report's files: no half-written file ever carries a final name."""

from __future__ import annotations

from pathlib import Path

from prunelab.io import atomic_write_bytes


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    atomic_write_bytes(path, lambda fh: fh.write(text.encode("utf-8")))
