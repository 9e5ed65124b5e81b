"""Win rate, standard error and confidence intervals for pairwise judgments (docs/methods.md §5.3-§5.5).

Every outcome is a winner in {"a", "b", "tie"} from model_a's point of view. Ties count as half a
win (AlpacaEval convention, docs/methods.md §5.3 [ext]) or are dropped (`tie_policy="exclude"`).
Judgments are read once, as they come: what is kept of each is its winner, one byte (Outcomes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from rlhf.core.errors import ConfigError

WINNERS = ("a", "b", "tie")
TIE_POLICIES = ("half", "exclude")
FLIP = {"a": "b", "b": "a", "tie": "tie"}
WINNER_CODE = {winner: code for code, winner in enumerate(WINNERS)}
BOOTSTRAP_BLOCK = 2**22
"""Resampled indices drawn per block (32 MiB of int64), so a bootstrap of n scores needs O(n) memory,
not n_resamples x n; the blocks draw the same numbers one call would."""


class Outcomes(Sequence):
    """A sequence of winners stored one byte each, in the order they were added."""

    def __init__(self, winners: Iterable[str] = ()):
        self.codes = bytearray(WINNER_CODE[w] for w in winners)

    def append(self, winner: str) -> None:
        self.codes.append(WINNER_CODE[winner])

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Outcomes(WINNERS[c] for c in self.codes[index])
        return WINNERS[self.codes[index]]

    def __iter__(self):
        return (WINNERS[c] for c in self.codes)

    def count(self, winner: str) -> int:
        return self.codes.count(WINNER_CODE[winner]) if winner in WINNER_CODE else 0


def _check_policy(tie_policy: str) -> None:
    if tie_policy not in TIE_POLICIES:
        raise ConfigError("evaluate.tie_policy", f"'{tie_policy}' is not one of {TIE_POLICIES}")


def effective_n(wins: int, losses: int, ties: int, tie_policy: str = "half") -> int:
    """Judgments that enter the win rate: all of them, or all but the ties."""
    _check_policy(tie_policy)
    return wins + losses + (ties if tie_policy == "half" else 0)


def win_rate(wins: int, losses: int, ties: int, tie_policy: str = "half") -> float | None:
    """p = (wins + ties/2) / (wins + losses + ties)   (tie_policy="half")
    p = wins / (wins + losses)                       (tie_policy="exclude")
    None when no judgment enters the rate."""
    n = effective_n(wins, losses, ties, tie_policy)
    if n == 0:
        return None
    credit = wins + (0.5 * ties if tie_policy == "half" else 0.0)
    return credit / n


def standard_error(p: float, n: int, ddof: int = 0) -> float:
    """SE = sqrt(p (1 - p) / (n - ddof)).

    ddof = 0 is the thesis's eq. 7.1; ddof = 1 reproduces the thesis's Table 23 (docs/methods.md §5.4).
    """
    if n - ddof <= 0:
        raise ValueError(f"standard error needs n > ddof, got n={n}, ddof={ddof}")
    return math.sqrt(p * (1.0 - p) / (n - ddof))


def normal_ci(p: float, se: float, z: float = 1.96) -> tuple[float, float]:
    """CI = p ± z · SE (z = 1.96 for 95 %, thesis §7.3). Not clipped to [0, 1]: the formula as stated."""
    return p - z * se, p + z * se


def outcome_scores(winners: Iterable[str], tie_policy: str = "half") -> list[float]:
    """Per-judgment credit for model_a: win 1, loss 0, tie 0.5 (or dropped when excluded)."""
    _check_policy(tie_policy)
    credit = {"a": 1.0, "b": 0.0, "tie": 0.5}
    return [credit[w] for w in winners if not (w == "tie" and tie_policy == "exclude")]


def bootstrap_ci(scores: Sequence[float], n_resamples: int = 10000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap: resample the per-judgment scores with replacement n_resamples times and
    take the (1-level)/2 and (1+level)/2 quantiles of the resampled means."""
    if len(scores) == 0:
        raise ValueError("bootstrap_ci needs at least one score")
    rng = np.random.default_rng(seed)
    values = np.asarray(scores, dtype=float)
    rows = max(1, BOOTSTRAP_BLOCK // len(values))
    means = np.concatenate([values[rng.integers(0, len(values), size=(min(rows, n_resamples - start), len(values)))]
                            .mean(axis=1) for start in range(0, n_resamples, rows)])
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_gain(scores_a: Sequence[float], scores_b: Sequence[float], resamples: int, seed: int) -> dict:
    """Mean of a - b over paired items (the same prompts), its SE and 95% CIs:

        d_i = a_i - b_i,   gain = (1/n) Σ_i d_i,   SE = sqrt( Σ_i (d_i - gain)² / ((n - 1) n) )
        normal CI = gain ± 1.96 SE;   bootstrap CI = percentile bootstrap of the d_i (bootstrap_ci)

    The pipeline's gold-reward gain and its verifiable-accuracy gain (0/1 correctness per prompt)."""
    if len(scores_a) != len(scores_b):
        raise ValueError(f"paired_gain needs one b per a, got {len(scores_a)} and {len(scores_b)}")
    diffs = [a - b for a, b in zip(scores_a, scores_b)]
    n = len(diffs)
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / max(1, n - 1)
    se = math.sqrt(var / n)
    low, high = bootstrap_ci(diffs, n_resamples=resamples, seed=seed)
    return {"n": n, "mean_gain": mean, "se": se, "ci_normal": [mean - 1.96 * se, mean + 1.96 * se],
            "ci_bootstrap": [low, high]}


def summarize_outcomes(winners: Sequence[str], tie_policy: str = "half", ddof: int = 0, z: float = 1.96,
                       bootstrap_resamples: int = 0, seed: int = 0) -> dict:
    """n, wins, losses, ties, win rate, SE and normal CI (plus a bootstrap CI when resamples > 0)."""
    wins, losses, ties = (winners.count(k) for k in WINNERS)
    n = effective_n(wins, losses, ties, tie_policy)
    p = win_rate(wins, losses, ties, tie_policy)
    summary = {"n": n, "n_judgments": len(winners), "wins": wins, "losses": losses, "ties": ties,
               "win_rate": p, "se": None, "ci_low": None, "ci_high": None}
    if p is not None and n > ddof:
        se = standard_error(p, n, ddof)
        summary["se"] = se
        summary["ci_low"], summary["ci_high"] = normal_ci(p, se, z)
    if bootstrap_resamples > 0 and p is not None:
        low, high = bootstrap_ci(outcome_scores(winners, tie_policy), bootstrap_resamples, seed=seed)
        summary["bootstrap_ci_low"], summary["bootstrap_ci_high"] = low, high
    return summary


def summarize_judgments(judgments: Iterable[dict], tie_policy: str = "half", ddof: int = 0, z: float = 1.96,
                        bootstrap_resamples: int = 0, seed: int = 0) -> dict:
    """Per model pair (overall and per dataset) summaries, the win-rate matrix and average win rates.

    A pair keeps the orientation of its first judgment; judgments of the same two models in the
    other order are flipped into it, so (x vs y) and (y vs x) rows pool.
    """
    _check_policy(tie_policy)
    grouped = WinnerTable()
    for row in judgments:
        grouped.add(row)
    return grouped.summary(tie_policy, ddof, z, bootstrap_resamples, seed)


class WinnerTable:
    """Winners of judgment rows by model pair and dataset, one byte per judgment (what the win-rate
    summary needs of a judgments file read once, line by line)."""

    def __init__(self):
        self.grouped: dict[tuple[str, str], dict[str, Outcomes]] = {}

    def add(self, row: dict) -> None:
        """A pair keeps the orientation of its first judgment; judgments of the same two models in the
        other order are flipped into it, so (x vs y) and (y vs x) rows pool."""
        key = (row["model_a"], row["model_b"])
        winner = row["winner"]
        if key not in self.grouped and key[::-1] in self.grouped:
            key, winner = key[::-1], FLIP[winner]
        per_dataset = self.grouped.setdefault(key, {})
        per_dataset.setdefault(str(row.get("dataset", "all")), Outcomes()).append(winner)

    def summary(self, tie_policy: str = "half", ddof: int = 0, z: float = 1.96, bootstrap_resamples: int = 0,
                seed: int = 0) -> dict:
        """summarize_judgments' result for the rows added."""
        _check_policy(tie_policy)
        options = {"tie_policy": tie_policy, "ddof": ddof, "z": z, "bootstrap_resamples": bootstrap_resamples,
                   "seed": seed}
        pairs = []
        for (model_a, model_b), per_dataset in self.grouped.items():
            every = Outcomes()
            every.codes = bytearray(b"".join(outcomes.codes for outcomes in per_dataset.values()))
            pairs.append({
                "model_a": model_a, "model_b": model_b,
                "overall": summarize_outcomes(every, **options),
                "per_dataset": {name: summarize_outcomes(w, **options) for name, w in sorted(per_dataset.items())},
            })
        matrix = win_rate_matrix(pairs)
        return {"tie_policy": tie_policy, "ddof": ddof, "z": z, "pairs": pairs,
                "win_rate_matrix": matrix, "average_win_rate": average_win_rate(matrix)}


def win_rate_matrix(pairs: Iterable[dict]) -> dict[str, dict[str, float]]:
    """matrix[row][col] = row's win rate against col; the mirror entry is 1 - p (docs/methods.md §5.4)."""
    matrix: dict[str, dict[str, float]] = {}
    for pair in pairs:
        p = pair["overall"]["win_rate"]
        if p is None:
            continue
        matrix.setdefault(pair["model_a"], {})[pair["model_b"]] = p
        matrix.setdefault(pair["model_b"], {})[pair["model_a"]] = 1.0 - p
    return matrix


def average_win_rate(matrix: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean of a model's row over the opponents it met (thesis Table 10: crs_0625 -> 58.5 %)."""
    return {model: sum(row.values()) / len(row) for model, row in matrix.items() if row}
