"""Policy-loss options shared by the critic-free algorithms, as pure tensor functions
(docs/algorithms.md §1 and §2).

- clipped_surrogate: PPO's per-token clipped surrogate with DAPO's asymmetric clip range and the
  optional dual-clip bound; returns the per-token loss, to be reduced by aggregate_loss.
- gspo_sequence_ratio / gspo_loss: GSPO's length-normalised sequence ratio and its clipped loss,
  sequence form and GSPO-token form.
- aggregate_loss: token_mean (DAPO), seq_mean_token_mean (GRPO), seq_mean_token_sum_norm (Dr. GRPO).
- k2_kl: the k2 KL estimator ½(log π_θ − log π_ref)², which is advantages.kl_per_token's "mse".
- overlong_penalty: DAPO's soft overlong reward shaping from response lengths.

Shapes as in rlhf/rl/advantages.py: [B, T] response tokens, right-padded `mask`. Per-token losses
are 0 on padding; statistics are detached and ignore padding.
"""

from __future__ import annotations

import torch

from rlhf.core.token_losses import masked_mean
from rlhf.rl.advantages import _check_right_padded, kl_per_token

AGGREGATION_MODES = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")


def _check_same_shape(mask: torch.Tensor, **tensors: torch.Tensor) -> None:
    _check_right_padded(mask)
    for name, t in tensors.items():
        if t.shape != mask.shape:
            raise ValueError(f"{name} must have the mask's shape {tuple(mask.shape)}; got {tuple(t.shape)}")


def _zero_padding(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.bool(), x, torch.zeros_like(x))


# ---------------------------------------------------------------- KL


def k2_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k2 = ½ (log π_θ − log π_ref)² per token (Schulman 2020, "Approximating KL Divergence").

    Not a new estimator: advantages.kl_per_token's "mse" is exactly k2, so this forwards to it.
    REINFORCE++ (Hu 2025, arXiv 2501.03262) names k2 as an option for its KL term.
    """
    return kl_per_token(logprobs, ref_logprobs, "mse")


# ---------------------------------------------------------------- token-level clipped surrogate


def clipped_surrogate(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token ℓ_t = −max(min(ρ_t Â_t, clip(ρ_t, 1 − ε_low, 1 + ε_high) Â_t), c Â_t) [the max only
    where Â_t < 0 and dual_clip = c is set], ρ_t = exp(log π_θ − log π_old); 0 on padding.

    - Symmetric ε (clip_high=None → ε_high = ε_low) is PPO / GRPO (Shao et al. 2024, DeepSeekMath,
      §4.1.1 eq. 3; ε = 0.2).
    - Clip-higher: ε_low ≠ ε_high, DAPO's decoupled range (Yu et al. 2025, DAPO, §3.1; ε_low 0.2,
      ε_high 0.28).
    - Dual-clip (Ye et al. 2020, "Mastering Complex Control in MOBA Games with Deep Reinforcement
      Learning", AAAI, dual-clip PPO): for Â < 0 the objective is bounded below by c·Â, i.e. the
      loss by −c·Â, c > 1 (3 in that paper), so a huge ratio on a bad token cannot blow the step up.

    Stats (detached, token means over the mask): clipfrac = share of tokens where the clipped term
    is strictly the smaller (clip zeroed the gradient), split into clipfrac_high (ρ above 1 + ε_high,
    Â > 0) and clipfrac_low (ρ below 1 − ε_low, Â < 0); dual_clipfrac = share where the c·Â bound
    was taken; approx_kl = mean((ρ − 1) − log ρ), k3 estimate of KL(π_old ‖ π_θ); ratio_mean.
    Reduce the per-token loss with aggregate_loss.
    """
    _check_same_shape(mask, logprobs=logprobs, old_logprobs=old_logprobs, advantages=advantages)
    eps_high = clip_low if clip_high is None else clip_high
    if not 0.0 <= clip_low < 1.0 or eps_high < 0.0:
        raise ValueError(f"clip range must satisfy 0 <= clip_low < 1 and clip_high >= 0; got {clip_low}, {eps_high}")
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip c must be > 1 (Ye et al. 2020 use 3); got {dual_clip}")
    # log-ratio zeroed on padding before exp: garbage there (exp → inf) would give NaN gradients
    log_ratio = _zero_padding(logprobs - old_logprobs, mask)
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + eps_high) * advantages
    objective = torch.minimum(unclipped, clipped)
    if dual_clip is not None:
        bound = dual_clip * advantages
        dual_active = (advantages < 0) & (objective < bound)
        objective = torch.where(advantages < 0, torch.maximum(objective, bound), objective)
    else:
        dual_active = torch.zeros_like(mask, dtype=torch.bool)
    loss = _zero_padding(-objective, mask)
    with torch.no_grad():
        clip_active = clipped < unclipped
        f = ratio.dtype
        stats = {
            "clipfrac": masked_mean(clip_active.to(f), mask),
            "clipfrac_high": masked_mean((clip_active & (advantages > 0)).to(f), mask),
            "clipfrac_low": masked_mean((clip_active & (advantages < 0)).to(f), mask),
            "dual_clipfrac": masked_mean(dual_active.to(f), mask),
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return loss, stats


# ---------------------------------------------------------------- GSPO


def gspo_sequence_ratio(logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """s_i = (π_θ(y_i|x) / π_old(y_i|x))^{1/|y_i|} = exp((1/|y_i|) Σ_t (log π_θ − log π_old)), shape [B].

    GSPO's length-normalised sequence importance ratio (Zheng et al. 2025, Qwen, "Group Sequence
    Policy Optimization", §4.1), the geometric mean of the token ratios over the valid tokens. A
    row with no valid token gets s = 1.
    """
    _check_same_shape(mask, logprobs=logprobs, old_logprobs=old_logprobs)
    return torch.exp(masked_mean(logprobs - old_logprobs, mask, dim=1))


def _sequence_advantages(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B] as is; [B, T] must hold one value per row on its valid tokens (GRPO's broadcast form)."""
    if advantages.shape == (mask.size(0),):
        return advantages
    if advantages.shape != mask.shape:
        raise ValueError(
            f"advantages must be per sequence ({mask.size(0)},) or per token {tuple(mask.shape)}; "
            f"got {tuple(advantages.shape)}"
        )
    per_row = masked_mean(advantages, mask, dim=1)
    spread = _zero_padding((advantages - per_row.unsqueeze(1)).abs(), mask)
    if bool((spread > 1e-6 * (1.0 + per_row.abs().unsqueeze(1))).any()):
        raise ValueError(
            "sequence-level GSPO needs one advantage per sequence, but a row's tokens carry different "
            "advantages; pass a [B] tensor or use token_level=True (GSPO-token)"
        )
    return per_row


def gspo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 3e-4,
    clip_high: float = 4e-4,
    token_level: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GSPO: ℓ_i = −min(s_i Â_i, clip(s_i, 1 − ε_l, 1 + ε_r) Â_i), returned per token [B, T].

    Zheng et al. 2025 (Qwen, "Group Sequence Policy Optimization", §4.1, eq. 5; ε_l = 3e-4,
    ε_r = 4e-4 from its experiments, §5.1; no KL term). Sequence form (token_level=False): each
    valid token of row i carries ℓ_i, so aggregate_loss(..., "seq_mean_token_mean") gives the
    paper's (1/G) Σ_i ℓ_i; advantages are [B], or [B, T] constant along each row.

    GSPO-token (token_level=True, §4.3): s_{i,t} = sg[s_i] · π_θ(y_{i,t}) / sg[π_θ(y_{i,t})], built as
    exp(sg[log s_i] + log π_θ − sg[log π_θ]); its value is s_i on every token, its gradient
    s_i ∇log π_θ(y_{i,t}); ℓ_{i,t} = −min(s_{i,t} Â_{i,t}, clip(s_{i,t}) Â_{i,t}) with per-token
    advantages [B, T]. With Â_{i,t} = Â_i and seq_mean_token_mean this has the same value and
    gradient as the sequence form.

    Stats (detached): clipfrac = share of sequences (token form: tokens) where the clipped term is
    strictly smaller; seq_ratio_mean = mean s_i over non-empty rows; approx_kl = token mean of
    (ρ − 1) − log ρ.
    """
    _check_same_shape(mask, logprobs=logprobs, old_logprobs=old_logprobs)
    if clip_low < 0 or clip_high < 0 or clip_low >= 1:
        raise ValueError(f"GSPO clip ranges must satisfy 0 <= clip_low < 1, clip_high >= 0; got {clip_low}, {clip_high}")
    log_ratio = logprobs - old_logprobs
    log_s = masked_mean(log_ratio, mask, dim=1)
    nonempty = mask.bool().any(dim=1)
    if token_level:
        if advantages.shape != mask.shape:
            raise ValueError(f"GSPO-token needs per-token advantages {tuple(mask.shape)}; got {tuple(advantages.shape)}")
        ratio = torch.exp(log_s.detach().unsqueeze(1) + logprobs - logprobs.detach())
        unclipped = ratio * advantages
        clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * advantages
        loss = _zero_padding(-torch.minimum(unclipped, clipped), mask)
        clipfrac = masked_mean((clipped < unclipped).to(ratio.dtype).detach(), mask)
    else:
        seq_adv = _sequence_advantages(advantages, mask)
        s = torch.exp(log_s)
        unclipped = s * seq_adv
        clipped = torch.clamp(s, 1.0 - clip_low, 1.0 + clip_high) * seq_adv
        per_seq = -torch.minimum(unclipped, clipped)
        loss = _zero_padding(per_seq.unsqueeze(1).expand(mask.shape), mask)
        clipfrac = masked_mean((clipped < unclipped).to(s.dtype).detach(), nonempty)
    with torch.no_grad():
        token_ratio = torch.exp(log_ratio)
        stats = {
            "clipfrac": clipfrac,
            "seq_ratio_mean": masked_mean(torch.exp(log_s), nonempty),
            "approx_kl": masked_mean((token_ratio - 1.0) - log_ratio, mask),
        }
    return loss, stats


# ---------------------------------------------------------------- aggregation


def aggregate_loss(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "token_mean",
    norm_constant: float | None = None,
) -> torch.Tensor:
    """Reduce a per-token loss [B, T] to a scalar; padding never counts.

    - token_mean: Σ_{i,t} ℓ_{i,t} / Σ_i |y_i|, every token of the batch weighs the same
      (Yu et al. 2025, DAPO, §3.3 "Token-Level Policy Gradient Loss").
    - seq_mean_token_mean: (1/G) Σ_i (1/|y_i|) Σ_t ℓ_{i,t}, GRPO's original reduction
      (Shao et al. 2024, DeepSeekMath, §4.1.1 eq. 3).
    - seq_mean_token_sum_norm: (1/G) Σ_i (1/C) Σ_t ℓ_{i,t} with a constant C (norm_constant, e.g.
      the maximum response length / generation budget), Dr. GRPO's length-unbiased reduction
      (Liu et al. 2025, "Understanding R1-Zero-Like Training", §3).

    G counts the rows with at least one valid token (an all-padding row is not a sample); the mean
    over a batch with no valid token is 0. For gradient accumulation over micro-batches, these are
    per-micro-batch means: weight them by tokens (token_mean) or rows (the other two) when summing.
    """
    _check_same_shape(mask, per_token=per_token)
    valid = mask.bool()
    if mode == "token_mean":
        return masked_mean(per_token, mask)
    nonempty = valid.any(dim=1)
    if mode == "seq_mean_token_mean":
        return masked_mean(masked_mean(per_token, mask, dim=1), nonempty)
    if mode == "seq_mean_token_sum_norm":
        if norm_constant is None or not norm_constant > 0:
            raise ValueError(
                "seq_mean_token_sum_norm needs norm_constant > 0 (Dr. GRPO: the maximum response length); "
                f"got {norm_constant}"
            )
        sums = _zero_padding(per_token, mask).sum(dim=1) / norm_constant
        return masked_mean(sums, nonempty)
    raise ValueError(f"unknown loss aggregation {mode!r}; allowed: {', '.join(AGGREGATION_MODES)}")


# ---------------------------------------------------------------- DAPO overlong shaping


def overlong_penalty(lengths: torch.Tensor, max_length: int, cache_length: int) -> torch.Tensor:
    """DAPO's soft overlong punishment R_length(y), to add to the task reward, per response:

        0                                    if |y| ≤ L_max − L_cache
        ((L_max − L_cache) − |y|) / L_cache   if L_max − L_cache < |y| ≤ L_max
        −1                                   if |y| > L_max

    Yu et al. 2025 (DAPO, §3.4 "Overlong Reward Shaping", soft overlong punishment). lengths are
    response token counts [B] (mask.sum(dim=1)); the penalty falls linearly from 0 to −1 across the
    last L_cache tokens of the budget, so a response cut at exactly L_max gets −1.
    """
    if not 0 < cache_length <= max_length:
        raise ValueError(f"need 0 < cache_length <= max_length; got cache_length={cache_length}, max_length={max_length}")
    lengths = lengths.to(torch.get_default_dtype()) if not lengths.is_floating_point() else lengths
    soft_start = max_length - cache_length
    ramp = (soft_start - lengths) / cache_length
    penalty = torch.where(lengths <= soft_start, torch.zeros_like(lengths), ramp)
    return torch.where(lengths > max_length, torch.full_like(lengths, -1.0), penalty)


def aggregation_weights(mask: torch.Tensor, mode: str, total_rows: torch.Tensor | float,
                        norm_constant: float | None = None) -> torch.Tensor:
    """Per-token weights w [B, T] with Σ w·ℓ = aggregate_loss(ℓ, mask, mode) over the whole batch, for the
    sequence modes, when `mask` is one slice of it (a micro-batch, or one rank's rows) and
    `total_rows` counts the batch's non-empty rows: summing Σ w·ℓ over slices gives the one-batch
    loss however the batch is cut.

    seq_mean_token_mean: w_{i,t} = 1 / (|y_i| · G); seq_mean_token_sum_norm: w_{i,t} = 1 / (C · G).
    (token_mean slices are weighted by their token share instead, Σ ℓ / total tokens.)
    """
    _check_right_padded(mask)
    valid = mask.bool()
    weights = valid.to(torch.get_default_dtype())
    if mode == "seq_mean_token_mean":
        per_row = weights.sum(dim=1, keepdim=True).clamp_min(1.0)
    elif mode == "seq_mean_token_sum_norm":
        if norm_constant is None or not norm_constant > 0:
            raise ValueError(f"seq_mean_token_sum_norm needs norm_constant > 0; got {norm_constant}")
        per_row = torch.full_like(weights[:, :1], float(norm_constant))
    else:
        raise ValueError(f"aggregation_weights is for the sequence modes; got {mode!r}")
    return weights / per_row / torch.as_tensor(total_rows, dtype=weights.dtype).clamp_min(1.0)
