"""Hand-worked checks of every loss in rlhf/dpo/losses.py (docs/algorithms.md §3).

Notation in the comments: sp(z) = −log σ(z) = log(1 + e^(−z)); note sp(−z) = sp(z) + z.
Numbers used again and again:
  sp(0.2)  = log(1 + e^−0.2) = log(1.818731) = 0.598139
  sp(−0.2) = sp(0.2) + 0.2                   = 0.798139
  sp(−0.1) = log(1 + e^0.1)  = log(2.105171) = 0.744397
"""

from __future__ import annotations

import math

import pytest
import torch

from rlhf.core.errors import ConfigError
from rlhf.dpo.losses import (
    PREFERENCE_LOSSES,
    conservative_dpo_loss,
    hinge_loss,
    ipo_loss,
    kto_kl_estimate,
    kto_loss,
    log1mexp,
    log_odds,
    orpo_loss,
    preference_loss,
    robust_dpo_loss,
    sequence_logprobs,
    sigmoid_dpo_loss,
    simpo_loss,
)


def close(actual: torch.Tensor, expected: float, tol: float = 1e-5) -> None:
    assert float(actual.detach()) == pytest.approx(expected, abs=tol)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# Pair 1: π_c = −10, π_r = −12, ref_c = ref_r = −11
#   chosen log-ratio −10 − (−11) = 1, rejected −12 − (−11) = −1, h = 1 − (−1) = 2, βh = 0.2 (β = 0.1)
# Pair 2: π_c = −8, π_r = −7, ref_c = ref_r = −8
#   chosen log-ratio 0, rejected 1, h = −1, βh = −0.1
PAIR1 = dict(chosen_logps=t(-10.0), rejected_logps=t(-12.0), ref_chosen_logps=t(-11.0), ref_rejected_logps=t(-11.0))
PAIRS = dict(
    chosen_logps=t(-10.0, -8.0),
    rejected_logps=t(-12.0, -7.0),
    ref_chosen_logps=t(-11.0, -8.0),
    ref_rejected_logps=t(-11.0, -8.0),
)


# ---------------------------------------------------------------- sequence_logprobs


def test_sequence_logprobs_sum_and_average_ignore_padding_even_nan():
    token_logprobs = torch.tensor([[-1.0, -2.0, float("nan")], [-4.0, float("-inf"), 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # row 0: −1 + −2 = −3 ; row 1: −4 (the −inf and the trailing 0 are padding)
    assert sequence_logprobs(token_logprobs, mask).tolist() == pytest.approx([-3.0, -4.0])
    # averages: −3 / 2 = −1.5 ; −4 / 1 = −4
    assert sequence_logprobs(token_logprobs, mask, average=True).tolist() == pytest.approx([-1.5, -4.0])


def test_sequence_logprobs_zero_length_row_raises():
    token_logprobs = torch.tensor([[-1.0, -2.0], [-3.0, -4.0]])
    mask = torch.tensor([[1, 1], [0, 0]])
    with pytest.raises(ValueError, match=r"rows \[1\] have zero valid response tokens"):
        sequence_logprobs(token_logprobs, mask)
    with pytest.raises(ValueError, match="zero valid response tokens"):
        sequence_logprobs(token_logprobs, mask, average=True)


def test_sequence_logprobs_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"token_logprobs \[B, T\]"):
        sequence_logprobs(torch.zeros(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"token_logprobs \[B, T\]"):
        sequence_logprobs(torch.zeros(3), torch.ones(3))


# ---------------------------------------------------------------- DPO (sigmoid)


def test_dpo_single_pair_hand_computed():
    loss, stats = sigmoid_dpo_loss(**PAIR1, beta=0.1)
    # h = 2, βh = 0.2 -> sp(0.2) = 0.598139
    close(loss, 0.598139)
    # rewards β·log-ratio: 0.1·1 = 0.1 and 0.1·(−1) = −0.1 ; margin 0.2 ; chosen wins
    close(stats["chosen_rewards"], 0.1)
    close(stats["rejected_rewards"], -0.1)
    close(stats["margins"], 0.2)
    close(stats["accuracy"], 1.0)
    close(stats["chosen_logps"], -10.0)
    close(stats["rejected_logps"], -12.0)


def test_dpo_batch_mean_and_stats():
    loss, stats = sigmoid_dpo_loss(**PAIRS, beta=0.1)
    # (sp(0.2) + sp(−0.1)) / 2 = (0.598139 + 0.744397) / 2 = 0.671268
    close(loss, 0.671268)
    # chosen rewards 0.1, 0 -> 0.05 ; rejected −0.1, 0.1 -> 0 ; margins 0.2, −0.1 -> 0.05
    close(stats["chosen_rewards"], 0.05)
    close(stats["rejected_rewards"], 0.0)
    close(stats["margins"], 0.05)
    # pair 1 right, pair 2 wrong (0 < 0.1) -> 0.5
    close(stats["accuracy"], 0.5)
    assert all(not v.requires_grad for v in stats.values())


def test_dpo_gradient_direction():
    chosen = torch.tensor([-10.0], requires_grad=True)
    rejected = torch.tensor([-12.0], requires_grad=True)
    loss, _ = sigmoid_dpo_loss(chosen, rejected, t(-11.0), t(-11.0), beta=0.1)
    loss.backward()
    # dℓ/dπ_c = −β σ(−βh) = −0.1 · σ(−0.2) = −0.1 · 0.450166 = −0.0450166 ; dℓ/dπ_r = +0.0450166
    close(chosen.grad[0], -0.0450166)
    close(rejected.grad[0], 0.0450166)
    # raising the chosen log-prob by 1 (h 2 -> 3, βh = 0.3) lowers the loss: sp(0.3) = 0.554355 < 0.598139
    raised, _ = sigmoid_dpo_loss(t(-9.0), t(-12.0), t(-11.0), t(-11.0), beta=0.1)
    close(raised, 0.554355)
    assert float(raised.detach()) < float(loss.detach())


def test_dpo_rejects_bad_shapes_and_empty_batch_and_beta():
    with pytest.raises(ValueError, match="share the batch shape"):
        sigmoid_dpo_loss(t(-1.0, -2.0), t(-1.0), t(-1.0, -2.0), t(-1.0, -2.0))
    with pytest.raises(ValueError, match=r"1-D \[B\]"):
        sigmoid_dpo_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="empty batch"):
        sigmoid_dpo_loss(t(), t(), t(), t())
    with pytest.raises(ValueError, match="beta must be > 0"):
        sigmoid_dpo_loss(**PAIR1, beta=0.0)


# ---------------------------------------------------------------- cDPO and robust DPO


def test_cdpo_hand_computed():
    loss, stats = conservative_dpo_loss(**PAIR1, beta=0.1, label_smoothing=0.1)
    # 0.9·sp(0.2) + 0.1·sp(−0.2) = 0.9·0.598139 + 0.1·0.798139 = 0.538325 + 0.079814 = 0.618139
    # (= sp(0.2) + ε·βh = 0.598139 + 0.1·0.2)
    close(loss, 0.618139)
    close(stats["margins"], 0.2)


def test_cdpo_label_smoothing_zero_equals_dpo():
    cdpo, _ = conservative_dpo_loss(**PAIRS, beta=0.1, label_smoothing=0.0)
    dpo, _ = sigmoid_dpo_loss(**PAIRS, beta=0.1)
    close(cdpo, 0.671268)
    close(cdpo, float(dpo), tol=1e-7)


def test_cdpo_half_smoothing_is_symmetric_in_h():
    # ε = 0.5: ½sp(z) + ½sp(−z) is even in z, so pair 1 (z = 0.2) and its mirror (z = −0.2) agree:
    # ½·0.598139 + ½·0.798139 = 0.698139
    forward, _ = conservative_dpo_loss(**PAIR1, beta=0.1, label_smoothing=0.5)
    mirror, _ = conservative_dpo_loss(t(-12.0), t(-10.0), t(-11.0), t(-11.0), beta=0.1, label_smoothing=0.5)
    close(forward, 0.698139)
    close(mirror, 0.698139)
    with pytest.raises(ValueError, match=r"label_smoothing ε must lie in \[0, 0.5\]"):
        conservative_dpo_loss(**PAIR1, label_smoothing=0.6)


def test_robust_dpo_hand_computed():
    loss, _ = robust_dpo_loss(**PAIR1, beta=0.1, flip_rate=0.1)
    # [0.9·sp(0.2) − 0.1·sp(−0.2)] / (1 − 0.2) = (0.538325 − 0.079814) / 0.8 = 0.458511 / 0.8 = 0.573139
    close(loss, 0.573139)


def test_robust_dpo_flip_rate_zero_equals_dpo():
    robust, _ = robust_dpo_loss(**PAIRS, beta=0.1, flip_rate=0.0)
    dpo, _ = sigmoid_dpo_loss(**PAIRS, beta=0.1)
    close(robust, 0.671268)
    close(robust, float(dpo), tol=1e-7)


def test_robust_dpo_can_be_negative_and_rejects_half():
    # h = 100, βh = 10: [0.8·sp(10) − 0.2·sp(−10)] / 0.6 ; sp(10) = 0.0000454, sp(−10) = 10.0000454
    # = (0.0000363 − 2.0000091) / 0.6 = −3.333288
    loss, _ = robust_dpo_loss(t(0.0), t(-100.0), t(0.0), t(0.0), beta=0.1, flip_rate=0.2)
    close(loss, -3.333288)
    with pytest.raises(ValueError, match="flip_rate"):
        robust_dpo_loss(**PAIR1, flip_rate=0.5)


# ---------------------------------------------------------------- IPO


def test_ipo_summed_log_probs_hand_computed():
    loss, stats = ipo_loss(**PAIR1, beta=0.1)
    # target 1/(2τ) = 1/0.2 = 5 ; h = 2 -> (2 − 5)² = 9
    close(loss, 9.0)
    # rewards τ·log-ratio: 0.1, −0.1
    close(stats["chosen_rewards"], 0.1)
    close(stats["rejected_rewards"], -0.1)


def test_ipo_per_token_average_hand_computed():
    loss, stats = ipo_loss(
        **PAIR1, beta=0.1, average_log_probs=True, chosen_lengths=torch.tensor([4]), rejected_lengths=torch.tensor([2])
    )
    # chosen /4: π −2.5, ref −2.75 -> log-ratio 0.25 ; rejected /2: π −6, ref −5.5 -> log-ratio −0.5
    # h = 0.25 − (−0.5) = 0.75 -> (0.75 − 5)² = 4.25² = 18.0625
    close(loss, 18.0625)
    close(stats["chosen_rewards"], 0.025)
    close(stats["rejected_rewards"], -0.05)
    with pytest.raises(ValueError, match="needs chosen_lengths and rejected_lengths"):
        ipo_loss(**PAIR1, average_log_probs=True)


def test_ipo_minimum_at_target_margin():
    # h = 5 exactly (log-ratios 2.5 and −2.5) -> (5 − 5)² = 0
    loss, _ = ipo_loss(t(-8.5), t(-13.5), t(-11.0), t(-11.0), beta=0.1)
    close(loss, 0.0)


# ---------------------------------------------------------------- hinge (SLiC)


def test_hinge_hand_computed():
    # pair 3: π_c = −1, ref_c = −11 -> 10 ; π_r = −12, ref_r = −2 -> −10 ; h = 20, βh = 2
    loss, stats = hinge_loss(
        t(-10.0, -8.0, -1.0), t(-12.0, -7.0, -12.0), t(-11.0, -8.0, -11.0), t(-11.0, -8.0, -2.0), beta=0.1
    )
    # max(0, 1 − 0.2) = 0.8 ; max(0, 1 + 0.1) = 1.1 ; max(0, 1 − 2) = 0 -> mean 1.9 / 3 = 0.633333
    close(loss, 0.633333)
    # accuracy: pairs 1 and 3 right, pair 2 wrong -> 2/3
    close(stats["accuracy"], 2.0 / 3.0)


# ---------------------------------------------------------------- SimPO


def test_simpo_hand_computed():
    loss, stats = simpo_loss(t(-10.0), t(-12.0), torch.tensor([5]), torch.tensor([4]), beta=2.0, gamma=1.0)
    # averages −10/5 = −2 and −12/4 = −3 ; rewards β·avg = −4 and −6
    # 2·(−2) − 2·(−3) − 1 = 1 -> sp(1) = log(1 + e^−1) = log(1.367879) = 0.313262
    close(loss, 0.313262)
    close(stats["chosen_rewards"], -4.0)
    close(stats["rejected_rewards"], -6.0)
    close(stats["margins"], 2.0)
    close(stats["accuracy"], 1.0)


def test_simpo_uses_lengths():
    # same sums, lengths 4 and 6: averages −2.5 and −2 -> 2·(−0.5) − 1 = −2 -> sp(−2) = log(1 + e²) = 2.126928
    loss, stats = simpo_loss(t(-10.0), t(-12.0), torch.tensor([4]), torch.tensor([6]), beta=2.0, gamma=1.0)
    close(loss, 2.126928)
    close(stats["accuracy"], 0.0)
    with pytest.raises(ValueError, match=r"rejected_lengths must be ≥ 1 token for every row; rows \[0\]"):
        simpo_loss(t(-10.0), t(-12.0), torch.tensor([4]), torch.tensor([0]))


# ---------------------------------------------------------------- ORPO


def test_orpo_hand_computed():
    loss, stats = orpo_loss(t(-2.0), t(-6.0), torch.tensor([4]), torch.tensor([3]), lam=0.1)
    # chosen mean log-prob −2/4 = −0.5: p = e^−0.5 = 0.606531, 1 − p = 0.393469, log(1 − p) = −0.932752
    #   log odds = −0.5 + 0.932752 = 0.432752
    # rejected mean −6/3 = −2: p = 0.135335, 1 − p = 0.864665, log(1 − p) = −0.145413
    #   log odds = −2 + 0.145413 = −1.854587
    # log odds ratio 0.432752 + 1.854587 = 2.287339 -> L_OR = sp(2.287339) = log(1 + e^−2.287339) = log(1.101536) = 0.096706
    # NLL = 0.5 ; L = 0.5 + 0.1 · 0.096706 = 0.509671
    close(loss, 0.509671)
    close(stats["nll"], 0.5)
    close(stats["odds_ratio_loss"], 0.096706)
    close(stats["chosen_log_odds"], 0.432752)
    close(stats["rejected_log_odds"], -1.854587)
    close(stats["margins"], 2.287339)
    close(stats["accuracy"], 1.0)


def test_orpo_nll_reductions():
    chosen, rejected = t(-2.0, -6.0), t(-6.0, -6.0)
    lengths_c, lengths_r = torch.tensor([4, 2]), torch.tensor([3, 3])
    _, per_seq = orpo_loss(chosen, rejected, lengths_c, lengths_r, nll_reduction="sequence")
    _, per_tok = orpo_loss(chosen, rejected, lengths_c, lengths_r, nll_reduction="token")
    # sequence: mean(2/4, 6/2) = (0.5 + 3) / 2 = 1.75 ; token: (2 + 6) / (4 + 2) = 1.333333
    close(per_seq["nll"], 1.75)
    close(per_tok["nll"], 1.333333)


def test_log1mexp_and_log_odds_stable_near_p_one():
    # mean log-prob −1e−4 (p = 0.9999): log odds = −1e−4 − log(1 − e^−1e−4) = 9.210290 (float64 reference)
    close(log_odds(torch.tensor([-1e-4]))[0], 9.210290, tol=1e-4)
    # naive float32 log(1 − exp(x)) is −inf at x = −1e−8 (exp rounds to 1); the safe helper stays finite:
    x = torch.tensor([-1e-8, 0.0, -50.0])
    assert torch.isinf(torch.log(1 - torch.exp(x[:1]))).all()
    safe = log1mexp(x)
    assert torch.isfinite(safe).all()
    # x ≥ −ε is clamped to −ε = −1.192093e−7: log1mexp = log(1.192093e−7) = −15.942385 (both first entries)
    assert safe[:2].tolist() == pytest.approx([-15.942385, -15.942385], abs=1e-3)
    # far from 0: log(1 − e^−50) = −e^−50 ≈ −1.9e−22 -> 0 to float precision
    close(safe[2], 0.0)


def test_orpo_finite_loss_and_grad_when_p_near_one():
    # both responses with mean log-prob ≈ 0 (p ≈ 1): naive log odds would be inf − inf = NaN
    chosen = torch.tensor([-1e-9, -1e-3], requires_grad=True)
    rejected = torch.tensor([0.0, -1e-3], requires_grad=True)
    loss, stats = orpo_loss(chosen, rejected, torch.tensor([3, 3]), torch.tensor([3, 3]), lam=0.1)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(chosen.grad).all() and torch.isfinite(rejected.grad).all()
    assert all(torch.isfinite(v) for v in stats.values())


# ---------------------------------------------------------------- KTO


def test_kto_weights_hand_computed():
    # desirable: r = −10 − (−12) = 2 ; undesirable: r = −15 − (−12) = −3 ; z = 0.5, β = 0.1
    # desirable   1.0 · (1 − σ(0.1·(2 − 0.5)))  = 1 − σ(0.15) = 1/(1 + e^0.15) = 1/2.161834 = 0.462570
    # undesirable 1.5 · (1 − σ(0.1·(0.5 + 3))) = 1.5 · (1/(1 + e^0.35)) = 1.5 · 1/2.419068 = 1.5 · 0.413382
    # mean = (0.462570 + 0.620074) / 2 = 0.541322
    loss, stats = kto_loss(
        t(-10.0, -15.0),
        t(-12.0, -12.0),
        torch.tensor([True, False]),
        kl_estimate=0.5,
        beta=0.1,
        desirable_weight=1.0,
        undesirable_weight=1.5,
    )
    close(loss, 0.541322)
    # rewards β r: 0.2 (desirable), −0.3 (undesirable); both on the right side of z
    close(stats["chosen_rewards"], 0.2)
    close(stats["rejected_rewards"], -0.3)
    close(stats["margins"], 0.5)
    close(stats["accuracy"], 1.0)
    close(stats["kl"], 0.5)
    # weights 1 and 1: (0.462570 + 0.413382) / 2 = 0.437976
    unweighted, _ = kto_loss(t(-10.0, -15.0), t(-12.0, -12.0), torch.tensor([True, False]), kl_estimate=0.5)
    close(unweighted, 0.437976)


def test_kto_reference_point_clamped_and_detached():
    kl = torch.tensor(-3.0, requires_grad=True)
    logps = torch.tensor([-10.0], requires_grad=True)
    loss, stats = kto_loss(logps, t(-12.0), torch.tensor([True]), kl_estimate=kl, beta=0.1)
    # z = max(0, −3) = 0: 1 − σ(0.1·2) = σ(−0.2) = 0.450166
    close(loss, 0.450166)
    close(stats["kl"], 0.0)
    loss.backward()
    assert kl.grad is None
    # dℓ/dπ = −β σ(βr)σ(−βr) = −0.1 · 0.549834 · 0.450166 = −0.0247516
    close(logps.grad[0], -0.0247516)


def test_kto_kl_estimate_from_mismatched_pairs():
    # log-ratios 1, −3, 5 -> mean 1 ; and −1, −2 -> mean −1.5, clamped to 0
    close(kto_kl_estimate(t(-1.0, -4.0, 0.0), t(-2.0, -1.0, -5.0)), 1.0)
    close(kto_kl_estimate(t(-3.0, -4.0), t(-2.0, -2.0)), 0.0)


# ---------------------------------------------------------------- dispatcher


def test_dispatcher_calls_the_named_loss():
    loss, _ = preference_loss("sigmoid", **PAIRS, beta=0.1)
    close(loss, 0.671268)
    loss, _ = preference_loss("simpo", t(-10.0), t(-12.0), torch.tensor([5]), torch.tensor([4]), beta=2.0, gamma=1.0)
    close(loss, 0.313262)


def test_dispatcher_unknown_kind_lists_known_kinds():
    with pytest.raises(ConfigError) as info:
        preference_loss("dpo_v2", **PAIRS)
    message = str(info.value)
    assert "'dpo_v2'" in message
    for kind in ("sigmoid", "cdpo", "robust", "ipo", "hinge", "simpo", "orpo", "kto"):
        assert kind in message
    assert set(PREFERENCE_LOSSES) == {"sigmoid", "cdpo", "robust", "ipo", "hinge", "simpo", "orpo", "kto"}


def test_dispatcher_wrong_arguments_name_the_signature():
    with pytest.raises(TypeError, match="simpo_loss"):
        preference_loss("simpo", **PAIRS)


def test_every_kind_returns_finite_scalar_and_detached_stats():
    lengths = torch.tensor([4, 2])
    calls = {
        "sigmoid": dict(PAIRS),
        "cdpo": dict(PAIRS),
        "robust": dict(PAIRS),
        "ipo": dict(PAIRS),
        "hinge": dict(PAIRS),
        "simpo": dict(chosen_logps=PAIRS["chosen_logps"], rejected_logps=PAIRS["rejected_logps"], chosen_lengths=lengths, rejected_lengths=lengths),
        "orpo": dict(chosen_logps=PAIRS["chosen_logps"], rejected_logps=PAIRS["rejected_logps"], chosen_lengths=lengths, rejected_lengths=lengths),
        "kto": dict(logps=t(-10.0, -8.0), ref_logps=t(-11.0, -8.0), desirable=torch.tensor([True, False]), kl_estimate=0.1),
    }
    for kind, kwargs in calls.items():
        kwargs = {k: (v.clone().requires_grad_(True) if k in ("chosen_logps", "logps") else v) for k, v in kwargs.items()}
        loss, stats = preference_loss(kind, **kwargs)
        assert loss.dim() == 0 and torch.isfinite(loss), kind
        assert loss.requires_grad, kind
        assert all(not v.requires_grad and v.dim() == 0 for v in stats.values()), kind
        assert "margins" in stats and "accuracy" in stats, kind
    assert math.isfinite(float(loss.detach()))
