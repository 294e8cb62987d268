"""Checks of a pruning method's settings, made when the method is built.

The pipeline builds the method before the baseline trains, so a bad value stops the job at once
instead of after minutes of training. Messages name the config key (`pruning.<name>`) and the
value given, as prunelab.validate's checks do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from prunelab.errors import PrunelabError
from prunelab.validate import check_whole, is_number, is_whole

__all__ = ["fraction", "is_number", "number", "one_of", "shape", "whole"]


def whole(key: str, value: object, low: int, nullable: bool = False) -> int | None:
    """`value` as an int: a whole number >= low (or None where `nullable`); 1.5 is refused."""
    check_whole(key, value, low, nullable)
    return None if value is None else int(value)  # type: ignore[arg-type]


def number(key: str, value: object) -> float:
    """`value` as a float: any int or float (ranges are checked by the caller); 'abc' is refused."""
    if not is_number(value):
        raise PrunelabError(f"{key} must be a number, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def fraction(key: str, value: object) -> float:
    """A sparsity: a number in [0, 1)."""
    if not is_number(value) or not math.isfinite(value) or not 0.0 <= value < 1.0:  # type: ignore[arg-type,operator]
        raise PrunelabError(f"{key} must be a number in [0, 1), got {value!r}")
    return float(value)  # type: ignore[arg-type]


def one_of(key: str, value: object, choices: Sequence[object]) -> None:
    """`value` must be one of `choices` (bools are not the numbers 0 and 1)."""
    if isinstance(value, bool) or value not in choices:
        allowed = " or ".join(str(c) for c in choices)
        raise PrunelabError(f"{key} must be {allowed}, got {value!r}")


def shape(key: str, value: object) -> tuple[int, ...] | None:
    """An input shape: null, or a list of whole numbers >= 1 (channels, height, width)."""
    if value is None:
        return None
    # A ListConfig when Hydra instantiates the method: any sequence but a string.
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else None
    if not items or not all(is_whole(v, 1) for v in items):
        shown = items if items is not None else value
        raise PrunelabError(
            f"{key} must be null or whole numbers >= 1 (channels, height, width), got {shown!r}"
        )
    return tuple(int(v) for v in items)
