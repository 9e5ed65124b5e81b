"""Policy and value losses of the RL stage as pure tensor functions (docs/methods.md §4.7).

The module computes log-probs and values and hands tensors in, so each formula is checked by hand.
"""

from __future__ import annotations

import torch

from rlhf.core.token_losses import masked_mean
from rlhf.rl.advantages import kl_per_token

def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_π = −mean_t min(ρ_t Â_t, clip(ρ_t, 1−ε, 1+ε) Â_t), ρ_t = exp(log π_θ − log π_old).

    PPO surrogate of ICE-GRT eq. 3 / thesis eq. 2.11
    (docs/methods.md §4.7; ε 0.2 ICE-GRT, 0.4 thesis). Stats (detached, masked):
    clipfrac = share of tokens where the clipped term is strictly the smaller one, i.e. where
    clipping zeroed the gradient; approx_kl = mean((ρ − 1) − log ρ), the k3 estimate of
    KL(π_old ‖ π_θ) on the rollout's own tokens; ratio_mean = mean ρ.
    """
    # Masked before exp: a padding slot with a log-ratio above ≈ 88 would give exp = inf and
    # inf · 0 = NaN in the backward, although the masked mean never reads it.
    log_ratio = torch.where(mask.bool(), logprobs - old_logprobs, torch.zeros_like(logprobs))
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

    Clipped critic loss (docs/methods.md §4.7; c 0.15 Qwen, 0.4 thesis, 0.2 when unstated).
    value_clipfrac = share of tokens where the clipped error is strictly the larger one.
    """
    clipped_values = old_values + torch.clamp(values - old_values, -clip_value, clip_value)
    error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(error, clipped_error), mask)
    with torch.no_grad():
        stats = {"value_clipfrac": masked_mean((clipped_error > error).to(error.dtype), mask)}
    return loss, stats


def kl_penalty_loss(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    estimator: str = "k3",
) -> torch.Tensor:
    """mean_t KL_t(π_θ ‖ π_ref) over valid tokens, to add to the actor loss as β·L_KL.

    The optional "KL in the loss" variant, off by default: every seed puts KL in the reward
    instead (docs/methods.md §4.3 step 5, §8.3.8). k3 is the default here because it is non-negative
    and unbiased on the policy's own samples; estimators as in advantages.kl_per_token.
    """
    return masked_mean(kl_per_token(logprobs, ref_logprobs, estimator), mask)
