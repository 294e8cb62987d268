"""Checks on user input that run before any data is loaded or any training starts."""

from __future__ import annotations

import math
from pathlib import Path

from prunelab.errors import PrunelabError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def check_sparsity(value: object) -> float:
    """A sparsity must be a number in [0, 1)."""
    if isinstance(value, bool):
        raise PrunelabError(f"sparsity must be a number in [0, 1), got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PrunelabError(f"sparsity must be a number in [0, 1), got {value!r}") from None
    if not math.isfinite(number) or not 0.0 <= number < 1.0:
        raise PrunelabError(f"sparsity must be in [0, 1), got {value!r}")
    return number


def options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The config options available in a group (`conf/<group>/*.yaml`)."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def check_option(group: str, value: str, conf_dir: Path = CONF_DIR) -> str:
    """An option of a config group must exist; the error lists the choices."""
    known = options(group, conf_dir)
    if known and value not in known:
        raise PrunelabError(f"unknown {group} '{value}'; choose one of: {', '.join(known)}")
    return value
