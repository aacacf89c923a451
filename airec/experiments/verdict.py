"""The experiment's comparison: each variant's take rate against the first variant's (pure functions)."""

from __future__ import annotations

import math

from airec.feedback.intervals import Z95

#: Impressions every variant needs before a verdict is given.
MIN_IMPRESSIONS = 1000
NOT_ENOUGH = "not enough data"
NO_DIFFERENCE = "no significant difference"


def difference(base: tuple[int, int], other: tuple[int, int]) -> dict | None:
    """other's take rate minus base's, with a 95% (normal, unpooled) interval; None without impressions.
    Tuples are (takes, impressions)."""
    (t0, n0), (t1, n1) = base, other
    if n0 <= 0 or n1 <= 0:
        return None
    p0, p1 = t0 / n0, t1 / n1
    half = Z95 * math.sqrt(p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1)
    d = p1 - p0
    low, high = d - half, d + half
    return {"difference": d, "interval": [low, high], "significant": low > 0 or high < 0}


def verdict(variants: list[dict]) -> tuple[str, str | None]:
    """(verdict, winner): "not enough data" until each variant has MIN_IMPRESSIONS; then "<name> is better"
    when the best variant differs significantly from the first (or, when the first is best, when every
    other one is significantly worse); else "no significant difference". `variants` hold name, takes,
    impressions, take_rate and (after the first) difference."""
    if any(v["impressions"] < MIN_IMPRESSIONS for v in variants):
        return NOT_ENOUGH, None
    best = max(variants, key=lambda v: v["take_rate"] or 0.0)
    if best is variants[0]:
        significant = all(v["difference"] and v["difference"]["interval"][1] < 0 for v in variants[1:])
    else:
        significant = bool(best["difference"]) and best["difference"]["interval"][0] > 0
    return (f"{best['name']} is better", best["name"]) if significant else (NO_DIFFERENCE, None)
