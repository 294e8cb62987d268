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


def paired_difference(n10: int, n01: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % interval of p1 − p2 for two proportions measured on the same n items.

    `n10` items count for the first measurement only, `n01` for the second only (the
    discordant pairs; items both count or miss carry no information about the difference).
    Agresti & Min (2005): the Wald interval after adding 0.5 to each of the four cells, which
    keeps its coverage near 95 % down to a handful of discordant pairs. Pairing is what lets a
    5-point drop on 1,000 images be told from noise when two unpaired intervals still overlap.
    """
    if n <= 0:
        return (-1.0, 1.0)
    m = n + 2
    a, b = (n10 + 0.5) / m, (n01 + 0.5) / m
    half = z * math.sqrt(max(a + b - (a - b) ** 2, 0.0) / m)
    return (max(-1.0, a - b - half), min(1.0, a - b + half))


def t975(df: int) -> float:
    """Student's t 97.5 % quantile with `df` degrees of freedom (two-sided 95 % intervals)."""
    from scipy.stats import t  # imported here: the report's other paths need no scipy

    return float(t.ppf(0.975, df))
