"""Hand-worked checks of the reward-model losses in rlhf/reward_model/losses.py (preference and absolute)."""

from __future__ import annotations

import math

import pytest
import torch

from rlhf.reward_model.losses import (
    gather_pairs,
    logistic_soft_bce_loss,
    margin_ranking_loss,
    mse_range_penalty_loss,
    pairwise_logistic_loss,
    sigmoid_mse_loss,
)

LN3 = math.log(3.0)


def close(actual: torch.Tensor, expected: float, tol: float = 1e-5) -> None:
    assert float(actual.detach()) == pytest.approx(expected, abs=tol)


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
