"""Every training loss of the pipeline as a pure tensor function (METHODS.md §3.4, §3.6, §4.7, §4.9).

Nothing here touches a model, an optimizer or a config: the SFT, reward and PPO modules compute
scores / log-probs and hand tensors in, so each formula can be checked by hand in a unit test.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlhf.advantages import kl_per_token

IGNORE_INDEX = -100


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Σ x·m / Σ m over `dim` (all elements when None); 0 where Σ m = 0.

    Padding and post-EOS tokens must not move any loss or statistic (METHODS.md §4.2), and an
    all-padding slice must give 0 rather than NaN so one empty row cannot poison a whole step.
    Values under m = 0 are never read, so NaN/inf padding is harmless.
    """
    weights = mask.to(x.dtype)
    weighted = torch.where(weights != 0, x * weights, torch.zeros_like(x))
    if dim is None:
        total, count = weighted.sum(), weights.sum()
    else:
        total, count = weighted.sum(dim), weights.sum(dim)
    safe_count = torch.where(count != 0, count, torch.ones_like(count))
    return torch.where(count != 0, total / safe_count, torch.zeros_like(total))


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Causal-LM cross-entropy: mean over kept t of −log p(labels[t+1] | logits[t]).

    Used for SFT (METHODS.md §2.2: prompt/template/padding labels are −100) and for the PTX term
    (§4.9). The shift lives here so callers pass labels aligned with input_ids. A batch whose labels
    are all −100 gives 0 (with a graph) instead of NaN.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"masked_lm_loss expects logits [B,T,V] and labels [B,T]; got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    shifted_logits = logits[:, :-1, :].reshape(-1, logits.size(-1))
    shifted_labels = labels[:, 1:].reshape(-1)
    total = F.cross_entropy(
        shifted_logits.float(), shifted_labels, ignore_index=IGNORE_INDEX, reduction="sum"
    )
    count = (shifted_labels != IGNORE_INDEX).sum().clamp_min(1)
    return total / count


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

    ICE-GRT's ICE-Reward loss (001_405ab40b5a1c3855.txt §3.2; METHODS.md §3.4). m is unstated in
    the seed -> default 1.0 (METHODS.md §8.3.1); a tensor gives one margin per pair.
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

    Bradley–Terry loss of thesis eq. 2.12 (002_e26accabd985358d.txt; METHODS.md §3.4): with
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

    A prompt with K replies yields C(K,2) pairs (METHODS.md §3.3) but only K forwards are needed.
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
    """mean_i(w_i · ℓ_i) — METHODS.md §3.6 [default]; not divided by Σw, so W scales the gradient."""
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
    c = 0.02 on the distance outside [0, 1] (002_e26accabd985358d.txt §5.3.1; METHODS.md §3.6).
    """
    penalty = F.relu(pred - 1.0) + F.relu(-pred)
    return _weighted_mean((pred - target) ** 2 + penalty_coef * penalty, weight)


def sigmoid_mse_loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """ℓ_i = (σ(z_i) − y_i)²; loss = mean_i(w_i ℓ_i). Thesis `sig+mse` (METHODS.md §3.6)."""
    return _weighted_mean((torch.sigmoid(logits) - target) ** 2, weight)


def logistic_soft_bce_loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """ℓ_i = −[y_i log σ(z_i) + (1 − y_i) log(1 − σ(z_i))], y ∈ [0, 1]; loss = mean_i(w_i ℓ_i).

    Thesis `logistic` loss, the one the chosen absolute RM uses (METHODS.md §3.6); computed with
    logits for stability.
    """
    per_sample = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
    return _weighted_mean(per_sample, weight)


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_π = −mean_t min(ρ_t Â_t, clip(ρ_t, 1−ε, 1+ε) Â_t), ρ_t = exp(log π_θ − log π_old).

    PPO surrogate of 001_405ab40b5a1c3855.txt eq. 3 / 002_e26accabd985358d.txt eq. 2.11
    (METHODS.md §4.7; ε 0.2 ICE-GRT, 0.4 thesis). Stats (detached, masked):
    clipfrac = share of tokens where the clipped term is strictly the smaller one, i.e. where
    clipping zeroed the gradient; approx_kl = mean((ρ − 1) − log ρ), the k3 estimate of
    KL(π_old ‖ π_θ) on the rollout's own tokens; ratio_mean = mean ρ.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -masked_mean(torch.minimum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped < unclipped).to(ratio.dtype), mask),
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return loss, stats


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_value: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_V = ½ · mean_t max((V − R)², (V_old + clip(V − V_old, −c, c) − R)²).

    Clipped critic loss (METHODS.md §4.7; c 0.15 Qwen, 0.4 thesis, 0.2 when unstated).
    value_clipfrac = share of tokens where the clipped error is strictly the larger one.
    """
    clipped_values = old_values + torch.clamp(values - old_values, -clip_value, clip_value)
    error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(error, clipped_error), mask)
    with torch.no_grad():
        stats = {"value_clipfrac": masked_mean((clipped_error > error).to(error.dtype), mask)}
    return loss, stats


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """H = logsumexp(z) − Σ_v softmax(z)_v z_v over the last axis (logged per token, METHODS.md §4.11)."""
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) = z[token] − logsumexp(z), for logits [..., V] and tokens [...].

    Avoids materialising log_softmax over the vocabulary: autograd keeps only the logits (alive
    anyway) and one logsumexp per position, which matters at V ≈ 32k–150k. Precision follows the
    logits' dtype; upcast them first if fp32 log-ratios are needed.
    """
    if tokens.shape != logits.shape[:-1]:
        raise ValueError(
            f"tokens must match the logits without their vocabulary axis {tuple(logits.shape[:-1])}; "
            f"got {tuple(tokens.shape)}"
        )
    picked = torch.gather(logits, -1, tokens.unsqueeze(-1).long()).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def kl_penalty_loss(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    estimator: str = "k3",
) -> torch.Tensor:
    """mean_t KL_t(π_θ ‖ π_ref) over valid tokens, to add to the actor loss as β·L_KL.

    The optional "KL in the loss" variant, off by default: every seed puts KL in the reward
    instead (METHODS.md §4.3 step 5, §8.3.8). k3 is the default here because it is non-negative
    and unbiased on the policy's own samples; estimators as in advantages.kl_per_token.
    """
    return masked_mean(kl_per_token(logprobs, ref_logprobs, estimator), mask)
