"""DAPO's dynamic sampling (Yu et al. 2025, §3.2; docs/algorithms.md §1.3): a group whose rewards
are all equal gives every sample advantage 0 and no gradient, so it is dropped and the batch is
refilled with groups of new prompts, up to `max_refills` extra prompt batches per step.

The batch keeps its size: the first `target` informative groups are trained on; when the refills
run out first, dropped groups fill the rest (their advantage is 0, so they change no weight but
keep every rank's batch the same shape). Ranks refill together, so FSDP2's collectives stay in step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlhf.rl.rollout_step import Rollout, concat_rollouts, select_rows


def informative_groups(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """[K] bool: group k (rows k·n … k·n + n − 1) has at least two different scores."""
    if scores.numel() % group_size:
        raise ValueError(f"{scores.numel()} scores do not hold whole groups of {group_size}")
    groups = scores.reshape(-1, group_size)
    return groups.amax(dim=1) != groups.amin(dim=1)


def chosen_groups(informative: list[bool], target: int) -> tuple[list[int], int]:
    """(the groups to train on, how many of them are uninformative fillers): informative groups
    first, in order, then uninformative ones in order, `target` in all."""
    good = [k for k, ok in enumerate(informative) if ok]
    bad = [k for k, ok in enumerate(informative) if not ok]
    picked = good[:target]
    fillers = bad[:max(0, target - len(picked))]
    return sorted(picked + fillers), len(fillers)


def dynamic_sample(first: Rollout, first_scores: torch.Tensor, group_size: int, max_refills: int,
                   refill: Callable[[int], tuple[Rollout, torch.Tensor]], every_rank_has_enough: Callable[[bool], bool],
                   pad_id: int) -> tuple[Rollout, torch.Tensor, dict[str, float], list[int]]:
    """(the rollout to train on, its raw scores, counts to log, the kept rows' indices in the first
    batch followed by the refills). refill(i) rolls out and scores the i-th extra prompt batch;
    every_rank_has_enough(ok) is True when ok holds on every rank."""
    target = first.n_rows // group_size
    parts, scores = [first], [first_scores]
    informative = informative_groups(first_scores, group_size).tolist()
    refills = 0
    while refills < max_refills and not every_rank_has_enough(sum(informative) >= target):
        rollout, raw = refill(refills)
        refills += 1
        parts.append(rollout)
        scores.append(raw)
        informative += informative_groups(raw, group_size).tolist()
    groups, fillers = chosen_groups(informative, target)
    rows = [k * group_size + j for k in groups for j in range(group_size)]
    merged = concat_rollouts(parts, pad_id)
    counts = {"refills": float(refills), "dropped_groups": float(len(informative) - sum(informative)),
              "filler_groups": float(fillers), "groups_seen": float(len(informative))}
    return select_rows(merged, rows), torch.cat(scores)[torch.tensor(rows, dtype=torch.long)], counts, rows
