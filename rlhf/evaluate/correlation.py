"""Reward-length correlation (thesis §6.2, Fig. 27; docs/methods.md §5.6): Pearson and Spearman.

The thesis reports 0.26 (absolute RM) and 0.15 (preference RM) without naming the coefficient or
the length unit; we report both coefficients and make the unit a choice (characters or words).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

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
    return _pearson_in_place(np.array(x, dtype=float), np.array(y, dtype=float))


def _pearson_in_place(dx: np.ndarray, dy: np.ndarray) -> float:
    """pearson of two float arrays it centres in place (no third copy of a long input)."""
    dx -= dx.mean()
    dy -= dy.mean()
    sxx, syy = float(dx @ dx), float(dy @ dy)
    if sxx == 0 or syy == 0:
        return math.nan
    return float(dx @ dy) / math.sqrt(sxx * syy)


def doubled_ranks(values: Sequence[float]) -> np.ndarray:
    """2 x average_ranks as int32: exact (2 x a mean of two ranks is an integer), with no Python
    object and half the memory of float ranks, for a report ranking every scored response."""
    values = np.asarray(values)   # a view of a numeric array.array or ndarray, no copy
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.ones(len(values), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    del ordered
    first = np.flatnonzero(starts)                              # where each run of ties starts in sorted order
    doubled = (first + np.append(first[1:], len(values)) + 1).astype(np.int32)   # first + last + 2
    run = np.cumsum(starts, dtype=np.int32)
    run -= 1
    out = np.empty(len(values), dtype=np.int32)
    out[order] = doubled[run]
    return out


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values get the mean of the ranks they span ([1, 2, 2, 3] -> [1, 2.5, 2.5, 4])."""
    return (doubled_ranks(values) / 2).tolist()


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """ρ = Pearson correlation of the average ranks (handles ties); Pearson is the same on 2 x ranks."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"spearman needs two sequences of equal length >= 2, got {len(x)} and {len(y)}")
    rank_x, rank_y = doubled_ranks(x), doubled_ranks(y)
    dx = rank_x.astype(float)
    del rank_x
    return _pearson_in_place(dx, rank_y.astype(float))


def reward_length_correlation(rewards: Sequence[float], lengths: Sequence[float]) -> dict:
    return {"n": len(rewards), "pearson": pearson(rewards, lengths), "spearman": spearman(rewards, lengths)}
