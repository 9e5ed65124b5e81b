"""Direct-alignment-from-preferences losses (the DPO family) as pure tensor functions.

Formulas and defaults: docs/algorithms.md §3. The trainer
computes sequence log-probs and hands 1-D [B] tensors in, so every formula is checked by hand.

Inputs. `chosen_logps` / `rejected_logps` are log π_θ(y | x) of the chosen (y_w) and rejected (y_l)
responses, summed over response tokens (see `sequence_logprobs`); `ref_*` the same under the frozen
reference π_ref. Methods that length-normalise (SimPO, ORPO, IPO's option) take the summed log-probs
plus the response lengths |y| and divide here, so sums and lengths can never come from different
masks. Notation: h = [log π(y_w) − log π_ref(y_w)] − [log π(y_l) − log π_ref(y_l)].

Outputs. Each loss returns (loss, stats): loss is the mean over the batch of the per-pair (or, for
KTO, per-example) loss; stats are detached 0-d tensors, batch means:
  chosen_rewards / rejected_rewards   the method's implicit reward of y_w / y_l
                                      (β·(log π − log π_ref) where a reference exists),
  margins                             chosen_rewards − rejected_rewards,
  accuracy                            share of pairs with chosen reward strictly > rejected reward
                                      (ties count as wrong),
  chosen_logps / rejected_logps       the policy log-probs as passed in,
plus method-specific entries named in each docstring.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from rlhf.core.errors import ConfigError

Stats = dict[str, torch.Tensor]


# ---------------------------------------------------------------- input checks


def _check_batch(**tensors: torch.Tensor) -> torch.Tensor:
    """All named tensors 1-D with one shared, non-empty length B; returns the first."""
    items = list(tensors.items())
    first_name, first = items[0]
    for name, t in items:
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor of shape [B]; got {type(t).__name__}")
        if t.dim() != 1:
            raise ValueError(f"{name} must be a 1-D [B] tensor (one value per sequence); got shape {tuple(t.shape)}")
        if t.shape != first.shape:
            shapes = ", ".join(f"{n} {tuple(v.shape)}" for n, v in items)
            raise ValueError(f"all inputs must share the batch shape [B]; got {shapes}")
    if first.numel() == 0:
        raise ValueError(f"empty batch: {first_name} has no entries, the mean loss would be NaN")
    return first


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0; got {value}")


def _as_lengths(name: str, lengths: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Response lengths as `like`'s dtype, every one ≥ 1 (an empty response has no mean log-prob)."""
    if not isinstance(lengths, torch.Tensor):
        lengths = torch.as_tensor(lengths)
    if bool((lengths <= 0).any()):
        rows = torch.nonzero(lengths <= 0).flatten().tolist()
        raise ValueError(
            f"{name} must be ≥ 1 token for every row; rows {rows} have length ≤ 0 (an empty response "
            f"has no per-token mean: drop the pair or fix the mask)"
        )
    return lengths.to(device=like.device, dtype=like.dtype)


def _pair_stats(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    **extra: torch.Tensor,
) -> Stats:
    with torch.no_grad():
        stats = {
            "chosen_rewards": chosen_rewards.detach().mean(),
            "rejected_rewards": rejected_rewards.detach().mean(),
            "margins": (chosen_rewards - rejected_rewards).detach().mean(),
            "accuracy": (chosen_rewards > rejected_rewards).to(chosen_rewards.dtype).mean(),
            "chosen_logps": chosen_logps.detach().mean(),
            "rejected_logps": rejected_logps.detach().mean(),
        }
        stats.update({k: v.detach() for k, v in extra.items()})
    return stats


def _log_ratio_margin(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(h, chosen log-ratio, rejected log-ratio), log-ratio = log π − log π_ref."""
    _check_batch(
        chosen_logps=chosen_logps,
        rejected_logps=rejected_logps,
        ref_chosen_logps=ref_chosen_logps,
        ref_rejected_logps=ref_rejected_logps,
    )
    chosen_ratio = chosen_logps - ref_chosen_logps
    rejected_ratio = rejected_logps - ref_rejected_logps
    return chosen_ratio - rejected_ratio, chosen_ratio, rejected_ratio


# ---------------------------------------------------------------- sequence log-probs


def sequence_logprobs(token_logprobs: torch.Tensor, mask: torch.Tensor, average: bool = False) -> torch.Tensor:
    """log π(y | x) = Σ_t m_t · log π(y_t | x, y_<t)  (average=True: divided by Σ_t m_t), per row.

    token_logprobs [B, T] are the response tokens' log-probs (e.g. core.token_losses.
    logprobs_from_logits on shifted logits); mask [B, T] is 1 on response tokens, 0 on prompt and
    padding. Values under m = 0 are never read, so NaN/inf padding is harmless. A row with no
    valid token raises: its sum would silently be 0 (a "perfect" log-prob) and its mean NaN.
    """
    if token_logprobs.dim() != 2 or mask.shape != token_logprobs.shape:
        raise ValueError(
            f"sequence_logprobs expects token_logprobs [B, T] and a mask of the same shape; got "
            f"{tuple(token_logprobs.shape)} and {tuple(mask.shape)}"
        )
    weights = mask.to(token_logprobs.dtype)
    valid = weights != 0
    empty = ~valid.any(dim=1)
    if bool(empty.any()):
        rows = torch.nonzero(empty).flatten().tolist()
        raise ValueError(
            f"rows {rows} have zero valid response tokens (mask all 0): an empty response has no "
            f"sequence log-prob; drop those pairs before computing the loss"
        )
    total = torch.where(valid, token_logprobs * weights, torch.zeros_like(token_logprobs)).sum(dim=1)
    if not average:
        return total
    return total / weights.sum(dim=1)


# ---------------------------------------------------------------- DPO and its noise-robust forms


def sigmoid_dpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
) -> tuple[torch.Tensor, Stats]:
    """ℓ = −log σ(β h); loss = mean over pairs.

    DPO, Rafailov et al. 2023, eq. 7 (β 0.1). Implicit rewards β·(log π − log π_ref) (their eq. 5
    up to the prompt-only log Z term, which cancels in h).
    """
    _check_positive("beta", beta)
    h, chosen_ratio, rejected_ratio = _log_ratio_margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps)
    loss = -F.logsigmoid(beta * h).mean()
    return loss, _pair_stats(beta * chosen_ratio, beta * rejected_ratio, chosen_logps, rejected_logps)


def conservative_dpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.1,
) -> tuple[torch.Tensor, Stats]:
    """ℓ = −(1 − ε) log σ(β h) − ε log σ(−β h); loss = mean over pairs.

    Conservative DPO (cDPO), Mitchell 2023, "A note on DPO with noisy preferences": the DPO
    cross-entropy against a label that is right with probability 1 − ε (ε 0.1). ε = 0 is DPO.
    ε must lie in [0, 0.5]: above ½ the "smoothed" label prefers y_l.
    """
    _check_positive("beta", beta)
    if not 0.0 <= label_smoothing <= 0.5:
        raise ValueError(f"label_smoothing ε must lie in [0, 0.5]; got {label_smoothing}")
    h, chosen_ratio, rejected_ratio = _log_ratio_margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps)
    z = beta * h
    per_pair = -(1.0 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    return per_pair.mean(), _pair_stats(beta * chosen_ratio, beta * rejected_ratio, chosen_logps, rejected_logps)


def robust_dpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    flip_rate: float = 0.1,
) -> tuple[torch.Tensor, Stats]:
    """ℓ = [(1 − ε)(−log σ(β h)) − ε(−log σ(−β h))] / (1 − 2ε); loss = mean over pairs.

    Robust DPO (rDPO), Chowdhury et al. 2024, "Provably Robust DPO", eq. 8: an unbiased estimate of
    the clean-label DPO loss when each label is flipped independently with probability ε. Unlike
    cDPO the flipped term is *subtracted*, so ℓ can be negative (it is unbounded below as β h → ∞);
    that is the paper's estimator, not a bug. ε ∈ [0, 0.5); ε = 0 is DPO. The ε default (0.1) is
    this module's: the paper treats ε as a known or estimated flip rate, with no single default.
    """
    _check_positive("beta", beta)
    if not 0.0 <= flip_rate < 0.5:
        raise ValueError(f"flip_rate ε must lie in [0, 0.5) (the loss divides by 1 − 2ε); got {flip_rate}")
    h, chosen_ratio, rejected_ratio = _log_ratio_margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps)
    z = beta * h
    per_pair = ((1.0 - flip_rate) * -F.logsigmoid(z) - flip_rate * -F.logsigmoid(-z)) / (1.0 - 2.0 * flip_rate)
    return per_pair.mean(), _pair_stats(beta * chosen_ratio, beta * rejected_ratio, chosen_logps, rejected_logps)


# ---------------------------------------------------------------- IPO and hinge


def ipo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    average_log_probs: bool = False,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Stats]:
    """ℓ = (h − 1/(2τ))²; loss = mean over pairs. `beta` is the paper's τ (0.1 → target h = 5).

    IPO, Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human
    Preferences", eq. 17. Which log-probs: the paper writes h with sequence log-probs π(y|x), so
    the default (average_log_probs=False) uses the sums as passed in. average_log_probs=True uses
    per-token means instead — every log-prob, policy and reference, divided by its response length
    (chosen_lengths / rejected_lengths, required then) — which is what several implementations (e.g.
    TRL's "ipo") do in practice; with sums the fixed target 1/(2τ) means a different per-token
    margin for long and short responses. Implicit rewards in the stats are τ·(log π − log π_ref) on
    the same log-probs h uses.
    """
    _check_positive("beta", beta)
    if average_log_probs:
        if chosen_lengths is None or rejected_lengths is None:
            raise ValueError("ipo_loss(average_log_probs=True) needs chosen_lengths and rejected_lengths")
        _check_batch(chosen_logps=chosen_logps, chosen_lengths=chosen_lengths, rejected_lengths=rejected_lengths)
        n_c = _as_lengths("chosen_lengths", chosen_lengths, chosen_logps)
        n_r = _as_lengths("rejected_lengths", rejected_lengths, rejected_logps)
        chosen_logps, ref_chosen_logps = chosen_logps / n_c, ref_chosen_logps / n_c
        rejected_logps, ref_rejected_logps = rejected_logps / n_r, ref_rejected_logps / n_r
    h, chosen_ratio, rejected_ratio = _log_ratio_margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps)
    loss = ((h - 1.0 / (2.0 * beta)) ** 2).mean()
    return loss, _pair_stats(beta * chosen_ratio, beta * rejected_ratio, chosen_logps, rejected_logps)


def hinge_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
) -> tuple[torch.Tensor, Stats]:
    """ℓ = max(0, 1 − β h); loss = mean over pairs.

    The hinge (rank-calibration) loss of SLiC-HF, Zhao et al. 2023, whose calibration term is
    max(0, δ − log π(y_w|x) + log π(y_l|x)). Here, as in docs/algorithms.md §3.5, on reference-normalised
    log-probs with δ = 1/β (scaled by β): β·max(0, 1/β − h) = max(0, 1 − β h) — the "hinge-norm"
    form of Liu et al. 2024 (RSO). SLiC-HF's reference-free original is ref_* = 0. SLiC-HF's extra
    regulariser (NLL on the SFT target) is not included.
    """
    _check_positive("beta", beta)
    h, chosen_ratio, rejected_ratio = _log_ratio_margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps)
    loss = F.relu(1.0 - beta * h).mean()
    return loss, _pair_stats(beta * chosen_ratio, beta * rejected_ratio, chosen_logps, rejected_logps)


# ---------------------------------------------------------------- reference-free: SimPO, ORPO


def simpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    beta: float = 2.0,
    gamma: float = 1.0,
) -> tuple[torch.Tensor, Stats]:
    """ℓ = −log σ((β/|y_w|) log π(y_w|x) − (β/|y_l|) log π(y_l|x) − γ); loss = mean over pairs.

    SimPO, Meng et al. 2024, eq. 6: no reference model; the reward is the length-normalised
    log-prob r(x, y) = (β/|y|) log π(y|x) (their eq. 4), and γ is the target reward margin.
    Defaults β 2.0, γ 1.0 (γ/β = 0.5, docs/algorithms.md §3.6). chosen_logps / rejected_logps are *sums*;
    the division by |y| happens here. Stats: rewards are SimPO's (β/|y|) log π.
    """
    _check_positive("beta", beta)
    _check_batch(
        chosen_logps=chosen_logps,
        rejected_logps=rejected_logps,
        chosen_lengths=chosen_lengths,
        rejected_lengths=rejected_lengths,
    )
    chosen_rewards = beta * chosen_logps / _as_lengths("chosen_lengths", chosen_lengths, chosen_logps)
    rejected_rewards = beta * rejected_logps / _as_lengths("rejected_lengths", rejected_lengths, rejected_logps)
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards - gamma).mean()
    return loss, _pair_stats(chosen_rewards, rejected_rewards, chosen_logps, rejected_logps)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − eˣ) for x ≤ 0, accurate everywhere (Mächler 2012, "Accurately computing log(1 − exp(−|a|))").

    x > −ln 2: log(−expm1(x)); else log1p(−exp(x)). Both branches are evaluated on the same input
    (torch.where), so neither may produce inf: x is clamped to ≤ −ε (ε = the dtype's machine
    epsilon) first. Hence log1mexp(0) = log(ε) (≈ −15.9 in fp32) rather than −inf, and the gradient
    is zero above −ε. Slightly positive x (log-softmax rounding on a token of probability ≈ 1) is
    clamped the same way rather than raising mid-training.
    """
    x = x.clamp(max=-torch.finfo(x.dtype).eps)
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def log_odds(mean_logp: torch.Tensor) -> torch.Tensor:
    """log odds(y) = log p − log(1 − p) with log p = the mean token log-prob; stable via log1mexp."""
    return mean_logp - log1mexp(mean_logp)


def orpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    lam: float = 0.1,
    nll_reduction: str = "sequence",
) -> tuple[torch.Tensor, Stats]:
    """L = L_SFT + λ · L_OR, L_OR = −log σ(log odds(y_w) − log odds(y_l)); odds(y) = p / (1 − p).

    ORPO, Hong et al. 2024, eq. 6 (L_ORPO = E[L_SFT + λ L_OR]) and eq. 7 (L_OR), λ 0.1, no reference
    model. p = P_θ(y|x) = exp((1/|y|) Σ_t log π(y_t | x, y_<t)), the per-token geometric mean, so
    log p = chosen_logps / |y_w| (sums are passed in, divided here). log(1 − p) uses log1mexp, so
    the odds stay finite as p → 1. L_SFT is the chosen response's NLL:
      nll_reduction="sequence" [default]: mean over pairs of −log π(y_w)/|y_w|, eq. 6's expectation
                                          over pairs of a per-sequence token-mean NLL;
      nll_reduction="token":              −Σ log π(y_w) / Σ |y_w|, the token mean over every chosen
                                          token of the batch (a plain causal-LM loss on the batch).
    Stats: nll, odds_ratio_loss (mean L_OR), chosen/rejected_log_odds; margins = mean log odds ratio,
    accuracy = share with log odds(y_w) > log odds(y_l) (same as p_w > p_l). No implicit rewards.
    """
    if lam < 0:
        raise ValueError(f"lam (λ) must be ≥ 0; got {lam}")
    if nll_reduction not in ("sequence", "token"):
        raise ValueError(f"nll_reduction must be 'sequence' or 'token'; got {nll_reduction!r}")
    _check_batch(
        chosen_logps=chosen_logps,
        rejected_logps=rejected_logps,
        chosen_lengths=chosen_lengths,
        rejected_lengths=rejected_lengths,
    )
    n_c = _as_lengths("chosen_lengths", chosen_lengths, chosen_logps)
    n_r = _as_lengths("rejected_lengths", rejected_lengths, rejected_logps)
    chosen_mean, rejected_mean = chosen_logps / n_c, rejected_logps / n_r
    chosen_lo, rejected_lo = log_odds(chosen_mean), log_odds(rejected_mean)
    odds_ratio_loss = -F.logsigmoid(chosen_lo - rejected_lo)
    nll = -chosen_mean.mean() if nll_reduction == "sequence" else -chosen_logps.sum() / n_c.sum()
    loss = nll + lam * odds_ratio_loss.mean()
    stats = _pair_stats(chosen_lo, rejected_lo, chosen_logps, rejected_logps)
    del stats["chosen_rewards"], stats["rejected_rewards"]
    stats.update(
        nll=nll.detach(),
        odds_ratio_loss=odds_ratio_loss.detach().mean(),
        chosen_log_odds=chosen_lo.detach().mean(),
        rejected_log_odds=rejected_lo.detach().mean(),
    )
    return loss, stats


# ---------------------------------------------------------------- KTO (unpaired)


def kto_kl_estimate(mismatched_logps: torch.Tensor, ref_mismatched_logps: torch.Tensor) -> torch.Tensor:
    """z_ref = max(0, mean_j [log π(y'_j | x_j) − log π_ref(y'_j | x_j)]), detached.

    KTO's reference point (Ethayarajh et al. 2024, §4): a batch estimate of KL(π_θ ‖ π_ref) from
    *mismatched* pairs (prompt x_j with another example's response y'_j), clamped at 0 and not
    backpropagated through.
    """
    _check_batch(mismatched_logps=mismatched_logps, ref_mismatched_logps=ref_mismatched_logps)
    return (mismatched_logps - ref_mismatched_logps).detach().mean().clamp(min=0.0)


def kto_loss(
    logps: torch.Tensor,
    ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    kl_estimate: torch.Tensor | float,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> tuple[torch.Tensor, Stats]:
    """ℓ = λ_D(1 − σ(β(r − z))) if y is desirable, λ_U(1 − σ(β(z − r))) if not; loss = mean over examples.

    KTO, Ethayarajh et al. 2024, eq. 8 (L = E[λ_y − v(x, y)]): r = log π(y|x) − log π_ref(y|x),
    z = max(0, kl_estimate) with no gradient (clamped and detached here, whatever is passed in; see
    kto_kl_estimate). Defaults β 0.1, λ_D = λ_U = 1; the paper advises λ_D n_D / (λ_U n_U) in
    [1, 4/3] for imbalanced data. Examples are unpaired: `desirable` [B] bool marks each one.
    Stats: chosen_rewards / rejected_rewards = mean β r over desirable / undesirable examples (0 for
    a group absent from the batch), margins their difference, kl = z, accuracy = share of examples
    on the right side of the reference point (desirable r > z, undesirable r < z).
    """
    _check_positive("beta", beta)
    if desirable_weight < 0 or undesirable_weight < 0:
        raise ValueError(
            f"desirable_weight and undesirable_weight must be ≥ 0; got {desirable_weight}, {undesirable_weight}"
        )
    _check_batch(logps=logps, ref_logps=ref_logps, desirable=desirable)
    good = desirable.to(torch.bool)
    z = torch.as_tensor(kl_estimate, dtype=logps.dtype, device=logps.device).detach()
    if z.numel() != 1:
        raise ValueError(f"kl_estimate must be a scalar; got shape {tuple(z.shape)}")
    z = z.reshape(()).clamp(min=0.0)
    r = logps - ref_logps
    desirable_loss = desirable_weight * (1.0 - torch.sigmoid(beta * (r - z)))
    undesirable_loss = undesirable_weight * (1.0 - torch.sigmoid(beta * (z - r)))
    loss = torch.where(good, desirable_loss, undesirable_loss).mean()
    with torch.no_grad():
        rewards = beta * r.detach()
        n_good, n_bad = good.sum(), (~good).sum()
        chosen = torch.where(good, rewards, torch.zeros_like(rewards)).sum() / n_good.clamp(min=1)
        rejected = torch.where(good, torch.zeros_like(rewards), rewards).sum() / n_bad.clamp(min=1)
        right_side = torch.where(good, r.detach() > z, r.detach() < z)
        stats = {
            "chosen_rewards": chosen,
            "rejected_rewards": rejected,
            "margins": chosen - rejected,
            "accuracy": right_side.to(logps.dtype).mean(),
            "kl": z,
        }
    return loss, stats


# ---------------------------------------------------------------- dispatcher

PREFERENCE_LOSSES: dict[str, Callable[..., tuple[torch.Tensor, Stats]]] = {
    "sigmoid": sigmoid_dpo_loss,
    "cdpo": conservative_dpo_loss,
    "robust": robust_dpo_loss,
    "ipo": ipo_loss,
    "hinge": hinge_loss,
    "simpo": simpo_loss,
    "orpo": orpo_loss,
    "kto": kto_loss,
}


def preference_loss(kind: str, *args, **kwargs) -> tuple[torch.Tensor, Stats]:
    """Calls the loss named `kind` (a PREFERENCE_LOSSES key) with the remaining arguments.

    An unknown kind raises ConfigError (a ValueError) naming every known kind; arguments the chosen
    loss does not take raise a TypeError naming its signature.
    """
    fn = PREFERENCE_LOSSES.get(kind)
    if fn is None:
        raise ConfigError(
            "dpo.loss_type", f"unknown preference loss kind {kind!r}; known kinds: {', '.join(PREFERENCE_LOSSES)}"
        )
    signature = inspect.signature(fn)
    try:
        signature.bind(*args, **kwargs)
    except TypeError as err:
        raise TypeError(f"preference loss {kind!r} is {fn.__name__}{signature}: {err}") from None
    return fn(*args, **kwargs)
