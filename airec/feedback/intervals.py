"""95% intervals for take rates and their differences (pure functions, no web or database)."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion; None without trials. Unlike the normal approximation
    it stays inside [0, 1] and is honest for rates near 0, which take rates are."""
    if trials <= 0:
        return None
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    center = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    return max(0.0, center - half), min(1.0, center + half)


def rate(successes: int, trials: int) -> float | None:
    return successes / trials if trials > 0 else None
