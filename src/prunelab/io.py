"""Atomic writes and safe loads: no half-written file ever carries a final name."""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from prunelab.errors import PrunelabError


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; a cache or report on a shared filesystem must be readable by the
# team, so finished files get the mode a plain open() would have given them.
FILE_MODE = 0o666 & ~_read_umask()


def atomic_write_bytes(path: str | Path, write: Callable[[BinaryIO], Any]) -> None:
    """Call write(fh) on a temp file beside `path`, fsync, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    # A tensor exists only once torch is imported: JSON files are written without importing it
    # (the report reads and writes them, and torch costs seconds to import).
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write_json(path: str | Path, data: dict) -> None:
    """Write JSON atomically (temp file, fsync, rename)."""
    text = json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(path, lambda fh: fh.write(text.encode()))


def read_json(path: str | Path) -> dict:
    """Read a JSON object, naming the file if it is corrupt or holds anything else."""
    try:
        # UTF-8 as write_json writes it, not the locale's encoding; bytes that are not UTF-8
        # (a torn or foreign file) raise UnicodeDecodeError, no JSONDecodeError.
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PrunelabError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(data, dict):  # every caller reads keys: `[1, 2]` is as corrupt as `[1,`
        raise PrunelabError(f"{path} is not a JSON object (it holds a {type(data).__name__})")
    return data


def read_json_if_any(path: str | Path) -> dict | None:
    """A JSON object from `path`, or None where there is none or it cannot be read."""
    try:
        return read_json(path) if Path(path).is_file() else None
    except (PrunelabError, OSError):
        return None


def save_torch(path: str | Path, obj: Any) -> None:
    """torch.save atomically."""
    import torch

    atomic_write_bytes(path, lambda fh: torch.save(obj, fh))


def load_torch(path: str | Path) -> Any:
    """torch.load with weights_only=True; a corrupt or truncated file gives a clear error."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:
        what = _kind(Path(path))
        if what:
            raise PrunelabError(f"cannot load {path}: {what}") from err
        why = _why(err)
        raise PrunelabError(f"cannot load {path}: corrupt, truncated or unsafe ({why})") from err


def _kind(path: Path) -> str | None:
    """What a file torch.load refused is, where its bytes tell (torch names only a symptom)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(4)
    except OSError:
        return None
    if size == 0:
        return "the file is empty"
    # torch.save writes a zip archive (PK..), or before torch 1.6 a pickle (protocol 2: 0x80).
    if head != b"PK\x03\x04" and not head.startswith(b"\x80"):
        return "not a file written by torch.save"
    if head == b"PK\x03\x04" and not zipfile.is_zipfile(path):
        return f"truncated or damaged ({size:,} bytes; its zip archive has no end)"
    return None


def _why(err: Exception) -> str:
    """One line on why torch.load failed (its own messages run to a dozen lines)."""
    text = str(err)
    if "Weights only load failed" in text:
        # torch's advice (weights_only=False) would run the file's code: never relay it.
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:
            return f"it holds a Python object ({found.group(1)}) that weights_only=True refuses"
        return "not a file written by torch.save"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = first.split(". ")[0]
    return f"{type(err).__name__}: {first[:160]}" if first else type(err).__name__
