"""Turn one prompt's ranked replies into (chosen, rejected) index pairs for the preference RM.

Ranks are ints per reply, 0 = best, lower is better; equal ranks are ties; None marks a reply
nobody ranked and is ignored. A tie never yields a pair (docs/methods.md §3.3 [default]). Which pairs a
K-way ranking yields is the `reward.pairs` strategy (docs/methods.md §8.2): ICE-GRT pairs the two best
with the two worst, the thesis uses every ordered pair.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from rlhf.core.errors import ConfigError, DataError
from rlhf.data.tideman import tideman_ranks

Ranks = Sequence[int | None]
Pair = tuple[int, int]


def _ranked_order(ranks: Ranks) -> list[int]:
    """Indices of the ranked replies, best first (index breaks ties only for a stable order)."""
    for i, r in enumerate(ranks):
        if r is not None and (isinstance(r, bool) or not isinstance(r, int) or r < 0):
            raise DataError(f"rank of reply {i} is {r!r}; a rank is an int >= 0 (0 = best) or None")
    return sorted((i for i, r in enumerate(ranks) if r is not None), key=lambda i: (ranks[i], i))


def _ordered_pairs(ranks: Ranks, chosen: set[int], rejected: set[int]) -> list[Pair]:
    """Every (c, r) with c in `chosen`, r in `rejected` and c strictly better, best pairs first."""
    order = _ranked_order(ranks)
    return [
        (c, r)
        for c in order
        if c in chosen
        for r in order
        if r in rejected and ranks[c] < ranks[r]
    ]


def all_ranked_pairs(ranks: Ranks) -> list[Pair]:
    """All C(K,2) (better, worse) pairs of the K ranked replies, ties skipped (thesis §2.5.2)."""
    ranked = set(_ranked_order(ranks))
    return _ordered_pairs(ranks, ranked, ranked)


def top2_bottom2_pairs(ranks: Ranks) -> list[Pair]:
    """ICE-GRT §3.2: chosen among the two best, rejected among the two worst (4 pairs for K = 5).

    "Among the two best" means fewer than two replies are strictly better, and "among the two
    worst" fewer than two strictly worse; so the result does not depend on the order the replies
    are listed in, and a tie at the border admits every tied reply. For K = 5 the middle reply is
    unused (docs/methods.md §3.3 [inferred]).

    For K < 4 the two sets would overlap, so each shrinks to n = K // 2 replies: K = 2 or 3 gives
    the single best-vs-worst pair, K < 2 gives nothing. This keeps the ICE-GRT intent of pairing
    only well-separated replies.
    """
    order = _ranked_order(ranks)
    n = min(2, len(order) // 2)
    top = {i for i in order if sum(ranks[j] < ranks[i] for j in order) < n}
    bottom = {i for i in order if sum(ranks[j] > ranks[i] for j in order) < n}
    return _ordered_pairs(ranks, top, bottom)


def best_vs_rest_pairs(ranks: Ranks) -> list[Pair]:
    """The best reply (every reply tied at the best rank) against each strictly worse reply."""
    order = _ranked_order(ranks)
    if not order:
        return []
    best = {i for i in order if ranks[i] == ranks[order[0]]}
    return _ordered_pairs(ranks, best, set(order))


PAIR_BUILDERS: dict[str, Callable[[Ranks], list[Pair]]] = {
    "top2_bottom2": top2_bottom2_pairs,
    "all_pairs": all_ranked_pairs,
    "best_vs_rest": best_vs_rest_pairs,
}


def build_pairs(ranks: Ranks, strategy: str) -> list[Pair]:
    if strategy not in PAIR_BUILDERS:
        raise ConfigError(
            "reward.pairs", f"unknown pair strategy {strategy!r}; allowed: {', '.join(PAIR_BUILDERS)}"
        )
    return PAIR_BUILDERS[strategy](ranks)


def ranked_group_to_pair_index(
    groups: Sequence[Ranks], strategy: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs of every group as indices into the flattened reply list, plus each pair's group.

    A K-way ranking is scored with one forward per reply; the loss then gathers the scores by
    `pair_index` and averages per group with `group_ids` (thesis eq. 2.12, the 1/C(K,2) factor).
    The flattened list is the groups' replies concatenated in order, unranked ones included.
    Returns pair_index LongTensor [P, 2] (chosen, rejected) and group_ids LongTensor [P].
    """
    pairs: list[Pair] = []
    group_ids: list[int] = []
    offset = 0
    for g, ranks in enumerate(groups):
        for c, r in build_pairs(ranks, strategy):
            pairs.append((offset + c, offset + r))
            group_ids.append(g)
        offset += len(ranks)
    pair_index = torch.tensor(pairs, dtype=torch.long).reshape(len(pairs), 2)
    return pair_index, torch.tensor(group_ids, dtype=torch.long)


def _mean_ranking(rankings: Sequence[Sequence[int]]) -> list[int]:
    """Dense ranks of the per-reply rank sums (same as mean rank; sums keep ties exact)."""
    totals = [sum(column) for column in zip(*rankings)]
    levels = sorted(set(totals))
    return [levels.index(t) for t in totals]


def consensus_ranking(rankings: Sequence[Sequence[int]], method: str = "tideman") -> list[int]:
    """Merge several labelers' rankings of the same K replies into one (docs/methods.md §3.3, §8.3.2).

    ICE-GRT has 3 labelers per prompt and does not say how they are combined; the default is
    Tideman ranked pairs (the thesis's merge for human votes), "mean_rank" is the alternative.
    Each ranking lists one int rank per reply, 0 = best. Returns ranks per reply, 0 = best.
    """
    if not rankings:
        raise DataError("consensus_ranking needs at least one labeler's ranking, got none")
    k = len(rankings[0])
    for n, ranking in enumerate(rankings):
        if len(ranking) != k:
            raise DataError(f"ranking {n} has {len(ranking)} ranks but ranking 0 has {k}; all must rank the same replies")
        for i, r in enumerate(ranking):
            if isinstance(r, bool) or not isinstance(r, int) or r < 0:
                raise DataError(f"ranking {n}, reply {i}: rank {r!r}; a consensus needs an int rank >= 0 for every reply")
    if method == "tideman":
        ballots = [{i: r + 1 for i, r in enumerate(ranking)} for ranking in rankings]
        merged = tideman_ranks(ballots, candidates=list(range(k)))
        return [merged[i] - 1 for i in range(k)]
    if method == "mean_rank":
        return _mean_ranking(rankings)
    raise ConfigError("reward.consensus", f"unknown consensus method {method!r}; allowed: tideman, mean_rank")
