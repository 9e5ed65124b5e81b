"""Hand-worked checks of every loss in rlhf/losses.py (METHODS.md §3.4, §3.6, §4.7, §4.9)."""

from __future__ import annotations

import math

import pytest
import torch

from rlhf.core.errors import ConfigError
from rlhf.core.token_losses import entropy_from_logits, logprobs_from_logits, masked_lm_loss, masked_mean
from rlhf.reward_model.losses import gather_pairs, logistic_soft_bce_loss, margin_ranking_loss, mse_range_penalty_loss, pairwise_logistic_loss, sigmoid_mse_loss
from rlhf.rl.losses import clipped_policy_loss, clipped_value_loss, kl_penalty_loss

LN3 = math.log(3.0)


def close(actual: torch.Tensor, expected: float, tol: float = 1e-5) -> None:
    assert float(actual.detach()) == pytest.approx(expected, abs=tol)


# ---------------------------------------------------------------- masked_mean


def test_masked_mean_ignores_masked_values_even_nan():
    x = torch.tensor([[1.0, 3.0, float("nan")], [5.0, float("inf"), 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    # (1 + 3 + 5) / 3 = 3
    close(masked_mean(x, mask), 3.0)
    # per row: (1 + 3) / 2 = 2 ; 5 / 1 = 5
    assert masked_mean(x, mask, dim=1).tolist() == pytest.approx([2.0, 5.0])


def test_masked_mean_empty_mask_gives_zero():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    mask = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    close(masked_mean(x, torch.zeros_like(x)), 0.0)
    # row 0: 1/1 = 1 ; row 1 has no valid entry -> 0, not NaN
    assert masked_mean(x, mask, dim=1).tolist() == [1.0, 0.0]


def test_masked_mean_float_weights():
    x = torch.tensor([2.0, 4.0])
    # (0.5*2 + 1.5*4) / (0.5 + 1.5) = 7 / 2 = 3.5
    close(masked_mean(x, torch.tensor([0.5, 1.5])), 3.5)


# ---------------------------------------------------------------- masked_lm_loss


def test_masked_lm_loss_hand_computed_1x3_vocab2():
    # position 0 logits [0, 0]      predict labels[1] = 1: p = 1/2 -> -ln(1/2) = 0.693147
    # position 1 logits [ln3, 0]    predict labels[2] = 0: p = 3/4 -> -ln(3/4) = 0.287682
    # position 2 logits are unused (nothing to predict); labels[0] is never a target
    logits = torch.tensor([[[0.0, 0.0], [LN3, 0.0], [5.0, -5.0]]])
    labels = torch.tensor([[1, 1, 0]])
    # mean = (0.693147 + 0.287682) / 2 = 0.490415
    close(masked_lm_loss(logits, labels), 0.490415)


def test_masked_lm_loss_ignores_minus_100():
    logits = torch.tensor([[[0.0, 0.0], [LN3, 0.0], [5.0, -5.0]]])
    # labels[2] = -100 -> only the first prediction counts: -ln(1/2) = 0.693147
    close(masked_lm_loss(logits, torch.tensor([[1, 1, -100]])), 0.693147)
    # labels[0] is never a target, so -100 there changes nothing: still 0.490415
    close(masked_lm_loss(logits, torch.tensor([[-100, 1, 0]])), 0.490415)
    # nothing to predict -> 0 rather than NaN
    close(masked_lm_loss(logits, torch.full((1, 3), -100)), 0.0)


def test_masked_lm_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="logits \\[B,T,V\\]"):
        masked_lm_loss(torch.zeros(1, 3, 2), torch.zeros(1, 4, dtype=torch.long))


# ---------------------------------------------------------------- preference losses


def test_margin_ranking_fixed_margin():
    chosen = torch.tensor([2.0, 0.5, 1.0])
    rejected = torch.tensor([0.0, 0.0, 1.5])
    # m = 1: max(0, 1-2+0) = 0 ; max(0, 1-0.5+0) = 0.5 ; max(0, 1-1+1.5) = 1.5 -> mean 2/3
    close(margin_ranking_loss(chosen, rejected, margin=1.0), 2.0 / 3.0)
    # m = 0: 0 ; 0 ; max(0, 0.5) = 0.5 -> mean 1/6 (loss stops once the order is right)
    close(margin_ranking_loss(chosen, rejected, margin=0.0), 1.0 / 6.0)


def test_margin_ranking_per_pair_margin():
    chosen = torch.tensor([2.0, 0.5, 1.0])
    rejected = torch.tensor([0.0, 0.0, 1.5])
    margins = torch.tensor([0.5, 1.0, 0.0])
    # max(0, 0.5-2) = 0 ; max(0, 1-0.5) = 0.5 ; max(0, 0+0.5) = 0.5 -> mean 1/3
    close(margin_ranking_loss(chosen, rejected, margin=margins), 1.0 / 3.0)


def test_margin_ranking_group_average():
    chosen = torch.tensor([2.0, 0.5, 1.0])
    rejected = torch.tensor([0.0, 0.0, 1.5])
    # m = 1 per-pair losses 0, 0.5, 1.5; groups {0,1} and {2}: mean(0, 0.5) = 0.25, 1.5
    # over groups (0.25 + 1.5) / 2 = 0.875 (pooled would be 2/3)
    close(margin_ranking_loss(chosen, rejected, 1.0, group_ids=torch.tensor([4, 4, 9])), 0.875)


def _logistic_groups():
    # pairs in batch order: A0, B0, A1, A2 with deltas r_w - r_l = 0, ln9, ln3, -ln3
    chosen = torch.tensor([1.0, math.log(9.0), 1.0 + LN3, 0.0])
    rejected = torch.tensor([1.0, 0.0, 1.0, LN3])
    group_ids = torch.tensor([7, 3, 7, 7])
    return chosen, rejected, group_ids


def test_pairwise_logistic_group_mean_then_mean_over_groups():
    chosen, rejected, group_ids = _logistic_groups()
    # -log sigma(0)     = ln 2      = 0.693147
    # -log sigma(ln3)   = ln(4/3)   = 0.287682
    # -log sigma(-ln3)  = ln 4      = 1.386294
    # -log sigma(ln9)   = ln(10/9)  = 0.105361
    # group 7: (0.693147 + 0.287682 + 1.386294) / 3 = 0.789041 ; group 3: 0.105361
    # mean over groups: (0.789041 + 0.105361) / 2 = 0.447201
    close(pairwise_logistic_loss(chosen, rejected, group_ids=group_ids), 0.447201)


def test_pairwise_logistic_without_groups_pools_pairs():
    chosen, rejected, _ = _logistic_groups()
    # pooled: (0.693147 + 0.287682 + 1.386294 + 0.105361) / 4 = 0.618121
    close(pairwise_logistic_loss(chosen, rejected), 0.618121)


def test_pairwise_logistic_margin_and_centering():
    # margin: delta 1 - 0 - m(1) = 0 -> -log sigma(0) = ln 2 = 0.693147
    close(pairwise_logistic_loss(torch.tensor([1.0]), torch.tensor([0.0]), margin=1.0), 0.693147)
    # centering: delta = 1 - (-3) = 4 -> log(1 + e^-4) = 0.0181499 ; (1 + (-3))^2 = 4 -> 0.01 * 4 = 0.04
    # total 0.0581499
    loss = pairwise_logistic_loss(torch.tensor([1.0]), torch.tensor([-3.0]), center_coef=0.01)
    close(loss, 0.0581499)


def test_preference_losses_empty_batch_is_zero_with_graph():
    chosen = torch.zeros(0, requires_grad=True)
    loss = pairwise_logistic_loss(chosen, torch.zeros(0))
    loss.backward()
    assert float(loss.detach()) == 0.0


def test_preference_losses_reject_mismatched_inputs():
    with pytest.raises(ValueError, match="equal length"):
        pairwise_logistic_loss(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="one group id per pair"):
        margin_ranking_loss(torch.zeros(3), torch.zeros(3), group_ids=torch.zeros(2))


def test_gather_pairs_expands_pairs_from_one_score_per_response():
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4])
    pairs = torch.tensor([[0, 3], [1, 3], [0, 2]])
    chosen, rejected = gather_pairs(scores, pairs)
    assert chosen.tolist() == pytest.approx([0.1, 0.2, 0.1])
    assert rejected.tolist() == pytest.approx([0.4, 0.4, 0.3])
    with pytest.raises(ValueError, match="pair indices"):
        gather_pairs(scores, torch.tensor([[0, 4]]))
    with pytest.raises(ValueError, match=r"\[P, 2\]"):
        gather_pairs(scores, torch.tensor([0, 1]))


# ---------------------------------------------------------------- absolute losses


def test_mse_range_penalty_hand_computed():
    pred = torch.tensor([1.5, -0.5, 0.5])
    target = torch.tensor([1.0, 0.0, 0.25])
    # l0 = (0.5)^2 + 0.02 * relu(1.5 - 1)  = 0.25 + 0.01 = 0.26
    # l1 = (0.5)^2 + 0.02 * relu(0.5)      = 0.25 + 0.01 = 0.26
    # l2 = (0.25)^2 + 0                      = 0.0625
    # unweighted: (0.26 + 0.26 + 0.0625) / 3 = 0.194167
    close(mse_range_penalty_loss(pred, target), 0.194167)
    # weights 1, 2, 4: (0.26 + 0.52 + 0.25) / 3 = 1.03 / 3 = 0.343333
    close(mse_range_penalty_loss(pred, target, weight=torch.tensor([1.0, 2.0, 4.0])), 0.343333)
    # no penalty: (0.25 + 0.25 + 0.0625) / 3 = 0.1875
    close(mse_range_penalty_loss(pred, target, penalty_coef=0.0), 0.1875)


def test_sigmoid_mse_hand_computed():
    logits = torch.tensor([0.0, LN3])
    target = torch.tensor([1.0, 0.5])
    # sigma = 0.5, 0.75 -> (0.5 - 1)^2 = 0.25 ; (0.75 - 0.5)^2 = 0.0625
    close(sigmoid_mse_loss(logits, target), (0.25 + 0.0625) / 2)
    # weights 2, 1: (0.5 + 0.0625) / 2 = 0.28125
    close(sigmoid_mse_loss(logits, target, weight=torch.tensor([2.0, 1.0])), 0.28125)


def test_logistic_soft_bce_hand_computed():
    logits = torch.tensor([0.0, LN3])
    target = torch.tensor([0.25, 1.0])
    # p = 0.5, y = 0.25: -(0.25 ln .5 + 0.75 ln .5) = ln 2 = 0.693147
    # p = 0.75, y = 1:   -ln 0.75 = 0.287682
    close(logistic_soft_bce_loss(logits, target), (0.693147 + 0.287682) / 2)
    # weights 1, 3: (0.693147 + 0.863046) / 2 = 0.778097
    close(logistic_soft_bce_loss(logits, target, weight=torch.tensor([1.0, 3.0])), 0.778097)


def test_absolute_losses_reject_misshaped_weights():
    with pytest.raises(ValueError, match="one entry per sample"):
        sigmoid_mse_loss(torch.zeros(3), torch.zeros(3), weight=torch.ones(2))


# ---------------------------------------------------------------- PPO policy / value losses


def _policy_case():
    # ratios 1.1, 1.5, 0.5 on three valid tokens, a 4th padding token with wild values
    old = torch.tensor([[-1.0, -1.0, -1.0, -1.0]])
    logprobs = old + torch.log(torch.tensor([[1.1, 1.5, 0.5, 50.0]]))
    advantages = torch.tensor([[1.0, 2.0, 1.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    return logprobs.requires_grad_(), old, advantages, mask


def test_clipped_policy_loss_hand_computed():
    logprobs, old, advantages, mask = _policy_case()
    loss, stats = clipped_policy_loss(logprobs, old, advantages, mask, clip_eps=0.2)
    # t0: min(1.1*1, clip(1.1)*1 = 1.1)   = 1.1
    # t1: min(1.5*2 = 3.0, 1.2*2 = 2.4)   = 2.4   <- clipped term active
    # t2: min(0.5*1 = 0.5, 0.8*1 = 0.8)   = 0.5   <- ratio outside, but unclipped term is the min
    # loss = -(1.1 + 2.4 + 0.5) / 3 = -4/3
    close(loss, -4.0 / 3.0)
    # only t1 is clipped away -> clipfrac 1/3
    close(stats["clipfrac"], 1.0 / 3.0)
    # k3: (r-1) - ln r: 0.1 - 0.0953102 = 0.0046898 ; 0.5 - 0.4054651 = 0.0945349 ;
    #     -0.5 + 0.6931472 = 0.1931472 -> mean 0.2923719 / 3 = 0.0974573
    close(stats["approx_kl"], 0.0974573)
    # ratio mean (1.1 + 1.5 + 0.5) / 3 = 1.033333
    close(stats["ratio_mean"], 1.033333)


def test_clipped_policy_loss_gradient_is_zero_on_clipped_token():
    logprobs, old, advantages, mask = _policy_case()
    loss, _ = clipped_policy_loss(logprobs, old, advantages, mask, clip_eps=0.2)
    loss.backward()
    # d/dlogp of -(ratio * A)/3 = -(ratio * A)/3: t0 -1.1/3, t1 clipped 0, t2 -0.5/3, padding 0
    assert logprobs.grad[0].tolist() == pytest.approx([-1.1 / 3, 0.0, -0.5 / 3, 0.0], abs=1e-6)


def test_clipped_policy_loss_stats_are_detached():
    logprobs, old, advantages, mask = _policy_case()
    _, stats = clipped_policy_loss(logprobs, old, advantages, mask, clip_eps=0.2)
    assert all(not value.requires_grad for value in stats.values())


def test_clipped_value_loss_hand_computed():
    values = torch.tensor([[1.0, 0.6, 1.0, 9.0]])
    old_values = torch.tensor([[0.5, 0.5, 0.5, 0.0]])
    returns = torch.tensor([[1.2, 0.0, 0.0, -9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    loss, stats = clipped_value_loss(values, old_values, returns, mask, clip_value=0.2)
    # t0: (1.0-1.2)^2 = 0.04 ; Vc = 0.5 + 0.2 = 0.7 -> (0.7-1.2)^2 = 0.25 -> max 0.25 (clipped larger)
    # t1: V - Vold = 0.1 inside the clip: both (0.6)^2 = 0.36 -> 0.36 (not counted as clipped)
    # t2: (1.0-0)^2 = 1.0 ; Vc = 0.7 -> 0.49 -> max 1.0 (unclipped larger)
    # loss = 0.5 * (0.25 + 0.36 + 1.0) / 3 = 0.268333 ; value_clipfrac = 1/3
    close(loss, 0.268333)
    close(stats["value_clipfrac"], 1.0 / 3.0)


# ---------------------------------------------------------------- log-probs, entropy, KL loss


def test_entropy_from_logits_hand_computed():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [LN3, 0.0, -1e4, -1e4]])
    # uniform over 4: ln 4 = 1.386294
    # p = (0.75, 0.25, 0, 0): -(0.75 ln 0.75 + 0.25 ln 0.25) = 0.215762 + 0.346574 = 0.562335
    assert entropy_from_logits(logits).tolist() == pytest.approx([1.386294, 0.562335], abs=1e-5)


def test_logprobs_from_logits_hand_computed():
    logits = torch.tensor([[[LN3, 0.0], [0.0, 0.0]]])
    tokens = torch.tensor([[0, 1]])
    # softmax([ln3, 0]) = (0.75, 0.25) -> ln 0.75 = -0.287682 ; uniform -> ln 0.5 = -0.693147
    assert logprobs_from_logits(logits, tokens)[0].tolist() == pytest.approx([-0.287682, -0.693147], abs=1e-6)


def test_logprobs_from_logits_rejects_misaligned_tokens():
    with pytest.raises(ValueError, match="tokens must match"):
        logprobs_from_logits(torch.zeros(1, 3, 5), torch.zeros(1, 2, dtype=torch.long))


def test_kl_penalty_loss_hand_computed():
    logprobs = torch.tensor([[-1.0, -2.0, 7.0]])
    ref = torch.tensor([[-1.5, -2.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    # k3 with d = ref - logp: t0 d = -0.5 -> e^-0.5 - 1 + 0.5 = 0.1065307 ; t1 d = 0 -> 0
    # mean over 2 valid tokens = 0.0532653
    close(kl_penalty_loss(logprobs, ref, mask), 0.0532653)
    # k1: (0.5 + 0) / 2 = 0.25
    close(kl_penalty_loss(logprobs, ref, mask, estimator="k1"), 0.25)
    with pytest.raises(ConfigError, match="allowed: k1, k3, abs, mse"):
        kl_penalty_loss(logprobs, ref, mask, estimator="k2")
