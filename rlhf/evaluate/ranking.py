"""Merging human rankings: Tideman ranked pairs (rlhf.data.tideman), normalised Borda points
(docs/methods.md §5.8).

A ballot is one annotator's ranking of one prompt's responses: {candidate: rank}, rank 1 best,
equal ranks = a tie (the thesis's Argilla UI allows ties, thesis §5.5.2).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from rlhf.core.errors import DataError
from rlhf.data.jsonl import iter_jsonl
from rlhf.data.tideman import tideman_ranks


def borda_points(rank: int, n: int) -> float:
    """Normalised Borda: points = (n - rank + 1) / n, so n = 3 gives 1, 0.67, 0.33 (thesis §5.5.2)."""
    if not 1 <= rank <= n:
        raise ValueError(f"rank {rank} is outside 1..{n}")
    return (n - rank + 1) / n


def borda_scores(rankings: Iterable[dict]) -> dict:
    """Mean normalised Borda points per candidate over prompts; each ranking is {candidate: rank}
    with n = number of candidates in that ranking."""
    totals: dict = {}
    for ranking in rankings:
        for candidate, rank in ranking.items():
            totals.setdefault(candidate, []).append(borda_points(rank, len(ranking)))
    return {c: sum(points) / len(points) for c, points in totals.items()}


def group_mean_std(group_scores: Sequence[dict]) -> dict:
    """Across annotator groups: mean and population std (ddof = 0, which matches Table 17's
    reported spreads, docs/methods.md §5.8 [inferred])."""
    candidates = {c for scores in group_scores for c in scores}
    out = {}
    for candidate in sorted(candidates):
        values = np.array([scores[candidate] for scores in group_scores if candidate in scores], dtype=float)
        out[candidate] = {"mean": float(values.mean()), "std": float(values.std(ddof=0)), "groups": len(values)}
    return out


RANKING_ROW_KEYS = ("group", "prompt_id", "annotator", "model", "rank")


def load_ranking_rows(path: str) -> list[dict]:
    """Human-ranking export: one row per (group, prompt_id, annotator, model) with an integer rank."""
    rows = []
    for line_no, row in iter_jsonl(path):
        missing = [k for k in RANKING_ROW_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise DataError(f"missing keys {missing}; each row needs {list(RANKING_ROW_KEYS)}", source=str(path), record=line_no)
        if not isinstance(row["rank"], int) or row["rank"] < 1:
            raise DataError(f"rank must be an integer >= 1, got {row['rank']!r}", source=str(path), record=line_no)
        rows.append(row)
    return rows


def human_ranking_study(rows: Iterable[dict]) -> dict:
    """Thesis §5.5.2 pipeline: per group and prompt, merge the annotators' ballots with Tideman;
    score the merged ranks with normalised Borda averaged over prompts; then mean ± std over groups."""
    ballots: dict = {}
    for row in rows:
        prompt_ballots = ballots.setdefault(row["group"], {}).setdefault(row["prompt_id"], {})
        prompt_ballots.setdefault(row["annotator"], {})[row["model"]] = row["rank"]
    groups = {}
    for group, prompts in ballots.items():
        merged = [tideman_ranks(list(by_annotator.values())) for by_annotator in prompts.values()]
        groups[group] = borda_scores(merged)
    aggregate = group_mean_std(list(groups.values()))
    ranking = sorted(aggregate, key=lambda c: -aggregate[c]["mean"])
    return {"groups": groups, "aggregate": aggregate, "ranking": ranking}
