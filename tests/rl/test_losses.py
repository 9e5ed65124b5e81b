"""Hand-worked checks of the PPO losses in rlhf/rl/losses.py (clipped policy/value losses, KL penalty)."""

from __future__ import annotations

import pytest
import torch

from rlhf.core.errors import ConfigError
from rlhf.rl.losses import clipped_policy_loss, clipped_value_loss, kl_penalty_loss


def close(actual: torch.Tensor, expected: float, tol: float = 1e-5) -> None:
    assert float(actual.detach()) == pytest.approx(expected, abs=tol)


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


# ---------------------------------------------------------------- KL penalty


def test_kl_penalty_loss_hand_computed():
    logprobs = torch.tensor([[-1.0, -2.0, 7.0]])
    ref = torch.tensor([[-1.5, -2.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    # k3 with d = ref - logp: t0 d = -0.5 -> e^-0.5 - 1 + 0.5 = 0.1065307 ; t1 d = 0 -> 0
    # mean over 2 valid tokens = 0.0532653
    close(kl_penalty_loss(logprobs, ref, mask), 0.0532653)
    # k1: (0.5 + 0) / 2 = 0.25
    close(kl_penalty_loss(logprobs, ref, mask, estimator="k1"), 0.25)
    with pytest.raises(ConfigError, match="allowed: k1, k2, k3, abs, mse"):
        kl_penalty_loss(logprobs, ref, mask, estimator="k4")
