"""Statistics shared by the evaluation and the report (torch-free: the report runs without it)."""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def wilson(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of a proportion p observed on n trials."""
    if n <= 0:
        return (0.0, 1.0)
    p = min(max(p, 0.0), 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At p = 0 or 1 a bound equals p exactly; rounding can leave it a hair on the wrong side.
    return (min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))
