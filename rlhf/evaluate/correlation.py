"""Reward-length correlation (thesis §6.2, Fig. 27; docs/methods.md §5.6): Pearson and Spearman.

The thesis reports 0.26 (absolute RM) and 0.15 (preference RM) without naming the coefficient or
the length unit; we report both coefficients and make the unit a choice (characters or words).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

LENGTH_UNITS = ("chars", "words")


def response_length(text: str, unit: str = "chars") -> int:
    if unit == "chars":
        return len(text)
    if unit == "words":
        return len(text.split())
    raise ValueError(f"length unit '{unit}' is not one of {LENGTH_UNITS}")


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """r = Σ (x - x̄)(y - ȳ) / sqrt(Σ (x - x̄)² · Σ (y - ȳ)²); NaN when either side is constant."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"pearson needs two sequences of equal length >= 2, got {len(x)} and {len(y)}")
    mean_x, mean_y = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mean_x) * (b - mean_y) for a, b in zip(x, y))
    sxx = sum((a - mean_x) ** 2 for a in x)
    syy = sum((b - mean_y) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values get the mean of the ranks they span ([1, 2, 2, 3] -> [1, 2.5, 2.5, 4])."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """ρ = Pearson correlation of the average ranks (handles ties)."""
    return pearson(average_ranks(x), average_ranks(y))


def reward_length_correlation(rewards: Sequence[float], lengths: Sequence[float]) -> dict:
    return {"n": len(rewards), "pearson": pearson(rewards, lengths), "spearman": spearman(rewards, lengths)}
