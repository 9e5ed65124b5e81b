"""Tideman ranked pairs: one ranking merged from several rankings of the same candidates. The data
layer merges labellers' rankings with it (rlhf.data.pairs.consensus_ranking), evaluation the
human ranking study (rlhf.evaluate.ranking).

A ballot is one ranking: {candidate: rank}, rank 1 best, equal ranks = a tie.

Tideman ranked pairs (thesis: the OpenAssistant implementation, docs/methods.md §5.8):
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
