"""Critic-free advantage estimators as pure tensor functions: GRPO / Dr. GRPO, RLOO, REINFORCE++
(with and without the group baseline) and ReMax (docs/algorithms.md §1).

Shapes follow rlhf/rl/advantages.py: `mask` is [B, T] over response tokens only, right-padded (1 on
the tokens a row generated, up to and including EOS, then 0); `scores` is one sequence reward per
row, shape [B]. Every estimator returns per-token advantages [B, T], exactly 0 on padding.

Groups: row b answers prompt `group_ids[b]`. `group_ids` is either a [B] integer tensor (any order,
any id values) or a plain int n meaning "contiguous groups of n": rows 0..n−1 are prompt 0, rows
n..2n−1 prompt 1, and so on (the layout of `generate(num_return_sequences=n)`). Group estimators
need ≥ 2 samples per prompt; `validate_groups` says which group breaks that. A group whose scores
are all equal gets advantage exactly 0 (never NaN, whatever ε is), because it carries no signal.
"""

from __future__ import annotations

import torch

from rlhf.rl.advantages import _check_right_padded, whiten

GroupIds = torch.Tensor | int


# ---------------------------------------------------------------- group structure


def group_ids_from_size(batch_size: int, group_size: int) -> torch.Tensor:
    """[0]*n + [1]*n + … for a batch of contiguous groups of n samples; B must be a multiple of n."""
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 samples per prompt for a group baseline; got {group_size}")
    if batch_size % group_size != 0:
        raise ValueError(
            f"a batch of {batch_size} rows does not hold whole groups of {group_size} samples per prompt "
            f"({batch_size // group_size} whole groups and {batch_size % group_size} rows left over)"
        )
    return torch.arange(batch_size // group_size).repeat_interleave(group_size)


def validate_groups(
    group_ids: torch.Tensor, group_size: int | None = None, min_size: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the group structure of a batch; return (inverse [B], counts [K]).

    inverse[b] ∈ 0..K−1 is row b's group in sorted-id order, counts[k] the rows of group k. Raises a
    ValueError naming the offending group ids and their counts when a group has fewer than
    `min_size` rows, or, when `group_size` is given, when the batch does not hold whole groups of
    exactly `group_size` rows (e.g. a micro-batch split cut a group in two).
    """
    if not isinstance(group_ids, torch.Tensor) or group_ids.dim() != 1:
        shape = tuple(group_ids.shape) if isinstance(group_ids, torch.Tensor) else type(group_ids).__name__
        raise ValueError(f"group_ids must be a 1-D tensor of prompt indices, one per row; got {shape}")
    if group_ids.is_floating_point() or group_ids.is_complex():
        raise ValueError(f"group_ids must be integers (prompt indices); got dtype {group_ids.dtype}")
    if group_ids.numel() == 0:
        raise ValueError("group_ids is empty: a batch needs at least one group")
    unique, inverse, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)
    if group_size is not None:
        wrong = counts != group_size
        if bool(wrong.any()):
            found = {int(g): int(c) for g, c in zip(unique[wrong].tolist(), counts[wrong].tolist())}
            raise ValueError(
                f"batch does not hold whole groups of {group_size} samples per prompt: "
                f"group id -> sample count {found} ({group_ids.numel()} rows, {unique.numel()} groups)"
            )
    small = counts < min_size
    if bool(small.any()):
        found = {int(g): int(c) for g, c in zip(unique[small].tolist(), counts[small].tolist())}
        raise ValueError(
            f"group estimators need >= {min_size} samples per prompt; group id -> sample count {found}"
        )
    return inverse, counts


def _resolve_groups(
    group_ids: GroupIds, batch_size: int, group_size: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(group_ids, bool) or not isinstance(group_ids, (int, torch.Tensor)):
        raise ValueError(f"group_ids must be a [B] tensor or an int samples-per-prompt; got {group_ids!r}")
    if isinstance(group_ids, int):
        if group_size is not None and group_size != group_ids:
            raise ValueError(f"group_ids={group_ids} (samples per prompt) contradicts group_size={group_size}")
        group_ids = group_ids_from_size(batch_size, group_ids)
    elif group_ids.shape != (batch_size,):
        raise ValueError(f"group_ids must be one per row, shape ({batch_size},); got {tuple(group_ids.shape)}")
    return validate_groups(group_ids, group_size)


def _check_scores(scores: torch.Tensor, mask: torch.Tensor, name: str = "scores") -> torch.Tensor:
    _check_right_padded(mask)
    if scores.shape != (mask.size(0),):
        raise ValueError(f"{name} must be one per row, shape ({mask.size(0)},); got {tuple(scores.shape)}")
    return scores if scores.is_floating_point() else scores.to(torch.get_default_dtype())


def _broadcast(per_row: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B] → [B, T]: the row's value on each of its response tokens, 0 on padding."""
    full = per_row.unsqueeze(1).expand(mask.shape)
    return torch.where(mask.bool(), full, torch.zeros_like(full))


def _group_stats(
    scores: torch.Tensor, inverse: torch.Tensor, counts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per group k: sum Σ r, mean, and whether all its scores are equal (max == min)."""
    n_groups = counts.numel()
    sums = torch.zeros(n_groups, dtype=scores.dtype, device=scores.device).index_add_(0, inverse, scores)
    means = sums / counts.to(scores.dtype)
    highest = torch.full_like(sums, float("-inf")).scatter_reduce(0, inverse, scores, reduce="amax")
    lowest = torch.full_like(sums, float("inf")).scatter_reduce(0, inverse, scores, reduce="amin")
    return sums, means, highest == lowest


def _group_centred(scores: torch.Tensor, inverse: torch.Tensor, counts: torch.Tensor):
    """r_i − mean of its group, forced to exactly 0 in groups of equal scores (rounding of the
    mean, e.g. 0.1·3/3, would otherwise leave ±1 ulp that a division by std + ε blows up)."""
    _, means, constant = _group_stats(scores, inverse, counts)
    centred = scores - means[inverse]
    constant_row = constant[inverse]
    return torch.where(constant_row, torch.zeros_like(centred), centred), constant_row


# ---------------------------------------------------------------- GRPO / Dr. GRPO


def grpo_advantages(
    scores: torch.Tensor,
    group_ids: GroupIds,
    mask: torch.Tensor,
    scale_std: bool = True,
    eps: float = 1e-6,
    unbiased: bool = True,
    group_size: int | None = None,
) -> torch.Tensor:
    """Â_{i,t} = (r_i − mean(r)) / (std(r) + ε) on every token of y_i, mean and std over y_i's group.

    GRPO outcome supervision (Shao et al. 2024, DeepSeekMath, §4.1.2 "Outcome Supervision RL with
    GRPO": Â_{i,t} = r̃_i = (r_i − mean(r)) / std(r), used in the objective of eq. 3).
    scale_std=False gives Dr. GRPO's unscaled Â_i = r_i − mean(r) (Liu et al. 2025, "Understanding
    R1-Zero-Like Training", §3), which removes the difficulty bias of dividing by std.

    Which std: the paper writes std(r) without saying population or sample. The default
    unbiased=True is the sample std (Bessel, ÷ (G−1)), the convention of the reference GRPO
    implementations (TRL's GRPOTrainer and verl's GRPO estimator both call torch.std, which is
    unbiased); unbiased=False gives the population std (÷ G). ε is added to std, never under the
    root; groups of equal scores give exactly 0.
    """
    scores = _check_scores(scores, mask)
    inverse, counts = _resolve_groups(group_ids, scores.numel(), group_size)
    centred, constant_row = _group_centred(scores, inverse, counts)
    if scale_std:
        n = counts.to(scores.dtype)
        sq = torch.zeros_like(n).index_add_(0, inverse, centred**2)
        std = (sq / ((n - 1.0) if unbiased else n)).sqrt()
        advantages = centred / (std[inverse] + eps)
        centred = torch.where(constant_row, torch.zeros_like(advantages), advantages)
    return _broadcast(centred, mask)


# ---------------------------------------------------------------- RLOO


def rloo_advantages(
    scores: torch.Tensor,
    group_ids: GroupIds,
    mask: torch.Tensor,
    group_size: int | None = None,
) -> torch.Tensor:
    """A_i = r_i − (1/(G−1)) Σ_{j≠i} r_j on every token of y_i (leave-one-out baseline).

    REINFORCE Leave-One-Out (Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style
    Optimization for Learning from Human Feedback in LLMs", §3, after Kool et al. 2019, "Buy 4
    REINFORCE samples, get a baseline for free"). Computed as r_i − (S − r_i)/(G−1) with S the
    group sum; G may differ between groups. Groups of equal scores give exactly 0.
    """
    scores = _check_scores(scores, mask)
    inverse, counts = _resolve_groups(group_ids, scores.numel(), group_size)
    sums, _, constant = _group_stats(scores, inverse, counts)
    others = (sums[inverse] - scores) / (counts[inverse].to(scores.dtype) - 1.0)
    advantages = scores - others
    advantages = torch.where(constant[inverse], torch.zeros_like(advantages), advantages)
    return _broadcast(advantages, mask)


# ---------------------------------------------------------------- REINFORCE++


def returns_to_go(rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """G_t = Σ_{s ≥ t} γ^{s−t} r_s within each row, 0 on padding (rewards on padding are ignored)."""
    _check_right_padded(mask)
    if rewards.shape != mask.shape:
        raise ValueError(f"rewards and mask must share shape [B, T]; got {tuple(rewards.shape)}, {tuple(mask.shape)}")
    valid = mask.bool()
    r = torch.where(valid, rewards, torch.zeros_like(rewards))
    running = torch.zeros_like(r[:, 0])
    backwards = []
    for t in reversed(range(r.size(1))):
        running = r[:, t] + gamma * running
        backwards.append(running)
    out = torch.stack(backwards[::-1], dim=1)
    return torch.where(valid, out, torch.zeros_like(out))


def global_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x − μ) / (σ + ε), μ and population σ over every valid token of the batch passed in; 0 on padding.

    REINFORCE++'s global advantage normalisation (Hu 2025, arXiv 2501.03262, §3: mean and std over
    all tokens of the global batch). This is advantages.whiten with one guard added: when every
    valid value is equal the result is exactly 0 (whiten alone would divide rounding noise by ε).
    Distributed callers gather x and mask from every rank first (pad T to a common length with
    mask 0) and call this on the gathered batch, then keep their own rows.
    """
    _check_right_padded(mask)
    if x.shape != mask.shape:
        raise ValueError(f"x and mask must share shape [B, T]; got {tuple(x.shape)}, {tuple(mask.shape)}")
    valid = mask.bool()
    if not bool(valid.any()):
        return torch.zeros_like(x)
    kept = x[valid]
    if bool(kept.max() == kept.min()):
        return torch.zeros_like(x)
    return whiten(x, mask, shift_mean=True, eps=eps)


def _token_rewards(
    seq_rewards: torch.Tensor, mask: torch.Tensor, kl: torch.Tensor | None, beta: float
) -> torch.Tensor:
    """r_t = −β·KL_t on every valid token, plus the sequence reward at the row's last valid token."""
    lengths = mask.bool().sum(dim=1)
    if bool((lengths == 0).any()):
        rows = torch.nonzero(lengths == 0).flatten().tolist()
        raise ValueError(f"rows {rows} have no valid response token to carry the score; drop them first")
    if beta < 0:
        raise ValueError(f"beta must be >= 0; got {beta}")
    rewards = torch.zeros(mask.shape, dtype=seq_rewards.dtype, device=seq_rewards.device)
    if kl is not None:
        if kl.shape != mask.shape:
            raise ValueError(f"kl must be per token, shape {tuple(mask.shape)}; got {tuple(kl.shape)}")
        rewards = torch.where(mask.bool(), -beta * kl.to(rewards.dtype), rewards)
    elif beta != 0:
        raise ValueError(f"beta = {beta} needs the per-token kl tensor (e.g. kl_per_token(old, ref, 'k1'))")
    rows = torch.arange(mask.size(0), device=mask.device)
    rewards[rows, lengths - 1] += seq_rewards
    return rewards


def reinforce_pp_returns(
    scores: torch.Tensor,
    mask: torch.Tensor,
    kl: torch.Tensor | None = None,
    beta: float = 0.0,
    gamma: float = 1.0,
) -> torch.Tensor:
    """REINFORCE++ before normalisation: r_t = 1[t = last]·score − β·KL_t, G_t = Σ_{s≥t} γ^{s−t} r_s.

    Hu 2025 (REINFORCE++, arXiv 2501.03262, §3): token reward with the KL penalty on every token
    and the score on the final one; with γ = 1 this is A_t = r(x, y) − β Σ_{s≥t} KL_s. `kl` is the
    per-token KL of the rollout policy to the reference, the paper's k1 = log π_old − log π_ref
    (advantages.kl_per_token(old_logprobs, ref_logprobs, "k1"); "mse" is k2). Local and
    per-row, so each rank can compute it before gathering for global_whiten.
    """
    scores = _check_scores(scores, mask)
    return returns_to_go(_token_rewards(scores, mask, kl, beta), mask, gamma)


def reinforce_pp_advantages(
    scores: torch.Tensor,
    mask: torch.Tensor,
    kl: torch.Tensor | None = None,
    beta: float = 0.0,
    gamma: float = 1.0,
    eps: float = 1e-8,
) -> torch.Tensor:
    """REINFORCE++: global_whiten(reinforce_pp_returns(...)) over the batch passed in.

    Hu 2025 (arXiv 2501.03262, §3): returns of the KL-penalised token rewards, normalised by the
    mean and std of all valid tokens of the global batch (no per-prompt grouping). Pass the
    already-gathered global batch; see global_whiten for the distributed recipe.
    """
    return global_whiten(reinforce_pp_returns(scores, mask, kl, beta, gamma), mask, eps)


def reinforce_pp_baseline_returns(
    scores: torch.Tensor,
    group_ids: GroupIds,
    mask: torch.Tensor,
    kl: torch.Tensor | None = None,
    beta: float = 0.0,
    gamma: float = 1.0,
    group_size: int | None = None,
) -> torch.Tensor:
    """REINFORCE++-baseline before normalisation: score − group mean first, then the KL token
    rewards and returns of reinforce_pp_returns.

    Hu 2025 (arXiv 2501.03262, later versions, "REINFORCE++ w/ baseline"): the group mean of the
    scores is the baseline, subtracted before the KL shaping and before the global normalisation.
    That paper version puts the KL in the loss for this mode; pass beta = 0 (the default) for that
    and add a KL loss term, or beta > 0 with kl to keep it in the reward.
    """
    scores = _check_scores(scores, mask)
    inverse, counts = _resolve_groups(group_ids, scores.numel(), group_size)
    centred, _ = _group_centred(scores, inverse, counts)
    return returns_to_go(_token_rewards(centred, mask, kl, beta), mask, gamma)


def reinforce_pp_baseline_advantages(
    scores: torch.Tensor,
    group_ids: GroupIds,
    mask: torch.Tensor,
    kl: torch.Tensor | None = None,
    beta: float = 0.0,
    gamma: float = 1.0,
    eps: float = 1e-8,
    group_size: int | None = None,
) -> torch.Tensor:
    """REINFORCE++-baseline: global_whiten(reinforce_pp_baseline_returns(...)) over the batch passed in
    (Hu 2025, arXiv 2501.03262: group-mean baseline, then global-batch normalisation)."""
    returns = reinforce_pp_baseline_returns(scores, group_ids, mask, kl, beta, gamma, group_size)
    return global_whiten(returns, mask, eps)


# ---------------------------------------------------------------- ReMax


def remax_advantages(scores: torch.Tensor, greedy_scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A_i = r(x, y_i) − r(x, ŷ) on every token of y_i, ŷ the greedy response to y_i's prompt.

    ReMax (Li et al. 2023, "ReMax: A Simple, Effective, and Efficient Reinforcement Learning
    Method for Aligning Large Language Models", §4, Algorithm 1): the greedy response's reward is
    the baseline. greedy_scores is one per row ([B]); repeat a prompt's greedy score over its rows.
    """
    scores = _check_scores(scores, mask)
    greedy_scores = _check_scores(greedy_scores, mask, name="greedy_scores")
    return _broadcast(scores - greedy_scores.to(scores.dtype), mask)
