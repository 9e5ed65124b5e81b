"""Reward-model losses as pure tensor functions: pairwise (margin ranking, logistic) and absolute
(MSE with range penalty, sigmoid-MSE, soft BCE) (docs/methods.md §3.4, §3.6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

def _check_pairs(chosen: torch.Tensor, rejected: torch.Tensor, group_ids: torch.Tensor | None) -> None:
    if chosen.dim() != 1 or chosen.shape != rejected.shape:
        raise ValueError(
            f"chosen and rejected must be 1-D score vectors of equal length; got {tuple(chosen.shape)} "
            f"and {tuple(rejected.shape)}"
        )
    if group_ids is not None and group_ids.shape != chosen.shape:
        raise ValueError(
            f"group_ids must give one group id per pair ({chosen.numel()}); got shape "
            f"{tuple(group_ids.shape)}"
        )


def _mean_over_groups(per_pair: torch.Tensor, group_ids: torch.Tensor | None) -> torch.Tensor:
    """Mean within each prompt's pairs (the 1/C(K,2) of thesis eq. 2.12), then mean over prompts.

    Without groups every pair weighs the same (ICE-GRT's flat pairs). No pairs -> 0 with a graph,
    so a batch whose prompts were all ties still backpropagates.
    """
    if per_pair.numel() == 0:
        return per_pair.sum()
    if group_ids is None:
        return per_pair.mean()
    _, group_index = torch.unique(group_ids, return_inverse=True)
    n_groups = int(group_index.max()) + 1
    sums = per_pair.new_zeros(n_groups).index_add(0, group_index, per_pair)
    counts = per_pair.new_zeros(n_groups).index_add(0, group_index, torch.ones_like(per_pair))
    return (sums / counts).mean()


def margin_ranking_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    margin: float | torch.Tensor = 1.0,
    group_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """ℓ = max(0, m − r(x, y_w) + r(x, y_l)), averaged per group then over groups.

    ICE-GRT's ICE-Reward loss (ICE-GRT §3.2; docs/methods.md §3.4). m is unstated in
    the seed -> default 1.0 (docs/methods.md §8.3.1); a tensor gives one margin per pair.
    """
    _check_pairs(chosen, rejected, group_ids)
    per_pair = F.relu(margin - chosen + rejected)
    return _mean_over_groups(per_pair, group_ids)


def pairwise_logistic_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    margin: float | torch.Tensor = 0.0,
    center_coef: float = 0.0,
    group_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """ℓ = −log σ(r_w − r_l − m) + c·(r_w + r_l)², averaged per group then over groups.

    Bradley–Terry loss of thesis eq. 2.12 (docs/methods.md §3.4): with
    group_ids = prompt ids the per-group mean is the 1/C(K,2) factor. The optional centering term
    [default off] keeps the reward's offset from drifting, since only differences are trained.
    """
    _check_pairs(chosen, rejected, group_ids)
    per_pair = -F.logsigmoid(chosen - rejected - margin)
    if center_coef:
        per_pair = per_pair + center_coef * (chosen + rejected) ** 2
    return _mean_over_groups(per_pair, group_ids)


def gather_pairs(scores: torch.Tensor, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores[pairs[:, 0]], scores[pairs[:, 1]]) — one RM forward per response, pairs expanded here.

    A prompt with K replies yields C(K,2) pairs (docs/methods.md §3.3) but only K forwards are needed.
    """
    if pairs.dim() != 2 or pairs.size(1) != 2:
        raise ValueError(f"pairs must be a [P, 2] (chosen_idx, rejected_idx) tensor; got {tuple(pairs.shape)}")
    if pairs.numel() and (int(pairs.min()) < 0 or int(pairs.max()) >= scores.numel()):
        raise ValueError(
            f"pair indices must lie in [0, {scores.numel() - 1}] (one index per scored response); "
            f"got range [{int(pairs.min())}, {int(pairs.max())}]"
        )
    return scores[pairs[:, 0]], scores[pairs[:, 1]]


def _weighted_mean(per_sample: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """mean_i(w_i · ℓ_i) — docs/methods.md §3.6 [default]; not divided by Σw, so W scales the gradient."""
    if weight is None:
        return per_sample.mean()
    if weight.shape != per_sample.shape:
        raise ValueError(
            f"weight must have one entry per sample {tuple(per_sample.shape)}; got {tuple(weight.shape)}"
        )
    return (weight.to(per_sample.dtype) * per_sample).mean()


def mse_range_penalty_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    penalty_coef: float = 0.02,
) -> torch.Tensor:
    """ℓ_i = (ŷ_i − y_i)² + c·(relu(ŷ_i − 1) + relu(−ŷ_i)); loss = mean_i(w_i ℓ_i).

    The thesis's unbounded `mse` absolute-RM loss with its "2 %" out-of-range penalty, read as
    c = 0.02 on the distance outside [0, 1] (thesis §5.3.1; docs/methods.md §3.6).
    """
    penalty = F.relu(pred - 1.0) + F.relu(-pred)
    return _weighted_mean((pred - target) ** 2 + penalty_coef * penalty, weight)


def sigmoid_mse_loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """ℓ_i = (σ(z_i) − y_i)²; loss = mean_i(w_i ℓ_i). Thesis `sig+mse` (docs/methods.md §3.6)."""
    return _weighted_mean((torch.sigmoid(logits) - target) ** 2, weight)


def logistic_soft_bce_loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """ℓ_i = −[y_i log σ(z_i) + (1 − y_i) log(1 − σ(z_i))], y ∈ [0, 1]; loss = mean_i(w_i ℓ_i).

    Thesis `logistic` loss, the one the chosen absolute RM uses (docs/methods.md §3.6); computed with
    logits for stability.
    """
    per_sample = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
    return _weighted_mean(per_sample, weight)
