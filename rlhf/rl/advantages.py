"""PPO's estimators as pure tensor functions: per-token KL, KL-penalised rewards, GAE, whitening,
and the reward-signal transforms (CRS mixing, probability -> logit) — docs/methods.md §3.9, §4.3–§4.6.

Shapes: [B, T] tensors are response tokens only, right-padded; `mask` is 1 on the tokens a row
actually generated (up to and including EOS) and 0 after, so valid tokens of a row are the
contiguous prefix 0..L−1.
"""

from __future__ import annotations

import torch

from rlhf.core.errors import ConfigError

KL_ESTIMATORS = ("k1", "k2", "k3", "abs", "mse")


def _masked_mean_and_var(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Population mean and variance of x over mask = 1 (0, 0 when nothing is valid)."""
    valid = mask.bool()
    count = valid.sum().clamp_min(1).to(x.dtype)
    kept = torch.where(valid, x, torch.zeros_like(x))
    mean = kept.sum() / count
    centred = torch.where(valid, x - mean, torch.zeros_like(x))
    return mean, (centred**2).sum() / count


def _check_right_padded(mask: torch.Tensor) -> None:
    if mask.dim() != 2:
        raise ValueError(f"mask must be [B, T]; got shape {tuple(mask.shape)}")
    valid = mask.bool()
    if bool((valid[:, 1:] & ~valid[:, :-1]).any()):
        raise ValueError(
            "mask must be right-padded: each row's response tokens must be a contiguous run starting "
            "at position 0 (1…1 0…0); found a 1 after a 0"
        )


def gae_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE: δ_t = r_t + γ V_{t+1} − V_t, A_t = Σ_l (γλ)^l δ_{t+l}, R_t = A_t + V_t.

    Standard form of ICE-GRT's GAE (ICE-GRT §3.3.1; docs/methods.md §4.5), with
    V = 0 after each row's last valid token so the episode ends there. Rewards and values on
    padding are zeroed first, which makes δ = 0 and hence A = 0 past the end, so one backward
    recursion serves rows of every length. Padding gets advantage 0 and return 0.
    """
    _check_right_padded(mask)
    if rewards.shape != mask.shape or values.shape != mask.shape:
        raise ValueError(
            f"rewards, values and mask must share shape [B, T]; got {tuple(rewards.shape)}, "
            f"{tuple(values.shape)}, {tuple(mask.shape)}"
        )
    valid = mask.bool()
    r = torch.where(valid, rewards, torch.zeros_like(rewards))
    v = torch.where(valid, values, torch.zeros_like(values))
    next_values = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], dim=1)
    deltas = r + gamma * next_values - v
    running = torch.zeros_like(deltas[:, 0])
    backwards = []
    for t in reversed(range(deltas.size(1))):
        running = deltas[:, t] + gamma * lam * running
        backwards.append(running)
    advantages = torch.stack(backwards[::-1], dim=1)
    advantages = torch.where(valid, advantages, torch.zeros_like(advantages))
    returns = torch.where(valid, advantages + v, torch.zeros_like(advantages))
    return advantages, returns


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x − μ) / (σ + ε), μ and σ (population) over every valid token of the batch; 0 on padding.

    ICE-GRT's advantage normalisation (ICE-GRT §3.3.4; docs/methods.md §4.6: masked
    whitening, ε added to σ). shift_mean=False rescales the spread but keeps the mean where it was:
    (x − μ) / (σ + ε) + μ.
    """
    mean, var = _masked_mean_and_var(x, mask)
    whitened = (x - mean) / (var.sqrt() + eps)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask.bool(), whitened, torch.zeros_like(whitened))


def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(π_θ ‖ π_ref) from log-probs of the sampled tokens.

    k1 = log π_θ − log π_ref (unbiased, can be negative; the seeds' penalty, docs/methods.md §4.3);
    k3 = (ρ − 1) − log ρ with ρ = π_ref / π_θ (unbiased and ≥ 0);
    abs = |log π_θ − log π_ref|; k2 = mse = ½ (log π_θ − log π_ref)².
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    if estimator == "abs":
        return log_ratio.abs()
    if estimator in ("mse", "k2"):
        return 0.5 * log_ratio**2
    raise ConfigError(
        "ppo.kl.estimator", f"unknown KL estimator {estimator!r}; allowed: {', '.join(KL_ESTIMATORS)}"
    )


def kl_penalized_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
    estimator: str = "k1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """r_t = −β·KL_t on every valid token, plus the sequence score s at the last valid token.

    docs/methods.md §4.3 step 5 (thesis r = r_θ − r_KL, thesis §2.5.3; ICE-GRT's KL
    reward adjustment, ICE-GRT §3.3.4). logprobs must come from the rollout-time
    actor π_old. Returns (rewards, kl), both 0 on padding.
    """
    _check_right_padded(mask)
    if scores.shape != (mask.size(0),):
        raise ValueError(f"scores must be one per row, shape ({mask.size(0)},); got {tuple(scores.shape)}")
    lengths = mask.bool().sum(dim=1)
    if bool((lengths == 0).any()):
        rows = torch.nonzero(lengths == 0).flatten().tolist()
        raise ValueError(f"rows {rows} have no valid response token to carry the score; drop them first")
    valid = mask.bool()
    kl = kl_per_token(logprobs, ref_logprobs, estimator)
    kl = torch.where(valid, kl, torch.zeros_like(kl))
    rewards = -beta * kl
    rows = torch.arange(mask.size(0), device=mask.device)
    rewards[rows, lengths - 1] += scores.to(rewards.dtype)
    return rewards, kl


def sequence_kl(kl: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Objective KL per sequence: Σ_t KL_t over valid tokens, shape [B] (docs/methods.md §4.4; the thesis
    plots its batch mean, and §4.10 requires it to be 0 when policy = reference)."""
    return torch.where(mask.bool(), kl, torch.zeros_like(kl)).sum(dim=1)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 − Var(R − V) / Var(R) over valid tokens (population variances); NaN when Var(R) = 0.

    Critic diagnostic (docs/methods.md §4.11): 1 = perfect, 0 = no better than a constant, < 0 worse.
    """
    _, var_returns = _masked_mean_and_var(returns, mask)
    _, var_residual = _masked_mean_and_var(returns - values, mask)
    if float(var_returns) == 0.0:
        return torch.tensor(float("nan"), dtype=returns.dtype, device=returns.device)
    return 1.0 - var_residual / var_returns
