"""Merging human rankings: Tideman ranked pairs, normalised Borda points (METHODS §5.8).

A ballot is one annotator's ranking of one prompt's responses: {candidate: rank}, rank 1 best,
equal ranks = a tie (the thesis's Argilla UI allows ties, 002 §5.5.2).

Tideman ranked pairs (thesis: the OpenAssistant implementation, METHODS §5.8):
  1. n(x, y) = number of ballots ranking x strictly above y (tied or missing: counts for neither).
  2. x defeats y when n(x, y) > n(y, x); margin = n(x, y) - n(y, x).
  3. Victories are taken largest margin first and locked in unless they close a cycle.
  4. The merged order is read off the locked graph.
Deterministic tie-break (our rule; the seeds give none): victories with equal margins are ordered by
the larger winning vote count n(x, y), then by the candidate order (the `candidates` argument, else
first appearance across the ballots), winner first, then loser. Candidates the locked graph leaves
unordered (e.g. exactly tied pairs) share a rank (competition ranking: 1, 1, 3).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from rlhf.core.errors import DataError
from rlhf.data.jsonl import iter_jsonl


def _candidate_order(ballots: Sequence[dict], candidates: Sequence[str] | None) -> list:
    if candidates is not None:
        return list(candidates)
    order: list = []
    for ballot in ballots:
        order += [c for c in ballot if c not in order]
    return order


def pairwise_counts(ballots: Iterable[dict], candidates: Sequence) -> dict[tuple, int]:
    """n(x, y) for every ordered pair of distinct candidates."""
    counts = {(x, y): 0 for x in candidates for y in candidates if x != y}
    for ballot in ballots:
        for x, y in counts:
            if x in ballot and y in ballot and ballot[x] < ballot[y]:
                counts[(x, y)] += 1
    return counts


def _reaches(locked: dict, start, goal) -> bool:
    stack, seen = [start], set()
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(locked[node])
    return False


def tideman_tiers(ballots: Sequence[dict], candidates: Sequence | None = None) -> list[list]:
    """Merged order as tiers of equally ranked candidates, best first."""
    order = _candidate_order(ballots, candidates)
    index = {c: i for i, c in enumerate(order)}
    counts = pairwise_counts(ballots, order)
    victories = [(x, y) for (x, y), n in counts.items() if n > counts[(y, x)]]
    victories.sort(key=lambda v: (-(counts[v] - counts[v[::-1]]), -counts[v], index[v[0]], index[v[1]]))
    locked: dict = {c: set() for c in order}
    for winner, loser in victories:
        if not _reaches(locked, loser, winner):
            locked[winner].add(loser)
    tiers, remaining = [], list(order)
    while remaining:
        beaten = {loser for w in remaining for loser in locked[w]}
        tier = [c for c in remaining if c not in beaten]
        tiers.append(tier)
        remaining = [c for c in remaining if c not in tier]
    return tiers


def tideman_ranks(ballots: Sequence[dict], candidates: Sequence | None = None) -> dict:
    """{candidate: merged rank}, rank 1 best; tied tiers share a rank (1, 1, 3)."""
    ranks, next_rank = {}, 1
    for tier in tideman_tiers(ballots, candidates):
        ranks.update({c: next_rank for c in tier})
        next_rank += len(tier)
    return ranks


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
    reported spreads, METHODS §5.8 [inferred])."""
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
