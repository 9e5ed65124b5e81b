"""Hand-worked checks of rlhf/rl/advantages.py (docs/methods.md §3.9, §4.3–§4.6)."""

from __future__ import annotations

import math

import pytest
import torch

from rlhf.rl.advantages import (
    explained_variance,
    gae_advantages,
    kl_penalized_rewards,
    kl_per_token,
    sequence_kl,
    whiten,
)
from rlhf.core.errors import ConfigError


def rows(t: torch.Tensor) -> list[list[float]]:
    return t.tolist()


# ---------------------------------------------------------------- GAE


def _gae_batch():
    # row 0: 3 response tokens ; row 1: 2 tokens + 1 padding slot holding garbage
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.5, -1.0, 99.0]])
    values = torch.tensor([[0.5, 0.4, 0.3], [0.2, 0.1, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    return rewards, values, mask


def test_gae_two_rows_of_different_length_by_hand():
    rewards, values, mask = _gae_batch()
    advantages, returns = gae_advantages(rewards, values, mask, gamma=0.9, lam=0.8)
    # gamma*lam = 0.72 ; V = 0 after each row's last valid token.
    # row 0: d2 = 1 + 0.9*0 - 0.3 = 0.7
    #        d1 = 0 + 0.9*0.3 - 0.4 = -0.13
    #        d0 = 0 + 0.9*0.4 - 0.5 = -0.14
    #        A2 = 0.7 ; A1 = -0.13 + 0.72*0.7 = 0.374 ; A0 = -0.14 + 0.72*0.374 = 0.12928
    # row 1: d1 = -1 + 0.9*0 - 0.1 = -1.1           (the padded V = 7 is not bootstrapped)
    #        d0 = 0.5 + 0.9*0.1 - 0.2 = 0.39
    #        A1 = -1.1 ; A0 = 0.39 + 0.72*(-1.1) = -0.402 ; padding -> 0
    expected_adv = [[0.12928, 0.374, 0.7], [-0.402, -1.1, 0.0]]
    # returns = A + V: row 0: 0.62928, 0.774, 1.0 ; row 1: -0.202, -1.0, padding 0
    expected_ret = [[0.62928, 0.774, 1.0], [-0.202, -1.0, 0.0]]
    for got, want in zip(rows(advantages), expected_adv):
        assert got == pytest.approx(want, abs=1e-6)
    for got, want in zip(rows(returns), expected_ret):
        assert got == pytest.approx(want, abs=1e-6)


def test_gae_rejects_left_padding():
    rewards, values, _ = _gae_batch()
    with pytest.raises(ValueError, match="right-padded"):
        gae_advantages(rewards, values, torch.tensor([[1, 1, 1], [0, 1, 1]]), gamma=0.9, lam=0.8)


def test_gae_lambda_one_gamma_one_is_reward_to_go_minus_value():
    # with gamma = lam = 1, A_t = sum_{l>=t} r_l - V_t: rewards [1, 2, 3], V [1, 1, 1]
    # A = [6-1, 5-1, 3-1] = [5, 4, 2] ; returns = reward-to-go [6, 5, 3]
    advantages, returns = gae_advantages(
        torch.tensor([[1.0, 2.0, 3.0]]), torch.ones(1, 3), torch.ones(1, 3), gamma=1.0, lam=1.0
    )
    assert rows(advantages)[0] == pytest.approx([5.0, 4.0, 2.0])
    assert rows(returns)[0] == pytest.approx([6.0, 5.0, 3.0])


# ---------------------------------------------------------------- whitening


def test_whiten_over_valid_tokens_only():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, -50.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    out = whiten(x, mask)
    # valid 1,2,3,4: mean 2.5 ; var = (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25 ; std = 1.118034
    # (x - 2.5) / 1.118034 = -1.341641, -0.447214, 0.447214, 1.341641 ; padding -> 0
    assert rows(out)[0] == pytest.approx([-1.341641, -0.447214, 0.447214], abs=1e-5)
    assert rows(out)[1] == pytest.approx([1.341641, 0.0, 0.0], abs=1e-5)
    valid = out[mask.bool()]
    assert float(valid.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(valid.std(unbiased=False)) == pytest.approx(1.0, abs=1e-6)


def test_whiten_padding_values_do_not_change_the_result():
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    a = whiten(torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, -50.0]]), mask)
    b = whiten(torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, float("nan")]]), mask)
    assert torch.equal(a, b)


def test_whiten_without_mean_shift_keeps_the_mean():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, -50.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    # (x - 2.5) / 1.118034 + 2.5 = 1.158359, 2.052786, 2.947214, 3.841641
    out = whiten(x, mask, shift_mean=False)
    assert rows(out)[0] == pytest.approx([1.158359, 2.052786, 2.947214], abs=1e-5)
    assert rows(out)[1] == pytest.approx([3.841641, 0.0, 0.0], abs=1e-5)


# ---------------------------------------------------------------- KL estimators


def test_kl_estimators_by_hand():
    logprobs = torch.tensor([-1.0, -2.0])
    ref = torch.tensor([-1.5, -1.0])
    # log ratio logp - ref = 0.5, -1.0
    assert kl_per_token(logprobs, ref, "k1").tolist() == pytest.approx([0.5, -1.0])
    # k3: r = exp(ref - logp) = e^-0.5 = 0.606531, e^1 = 2.718282
    #     (r - 1) - ln r = -0.393469 + 0.5 = 0.106531 ; 1.718282 - 1 = 0.718282
    assert kl_per_token(logprobs, ref, "k3").tolist() == pytest.approx([0.106531, 0.718282], abs=1e-6)
    assert kl_per_token(logprobs, ref, "abs").tolist() == pytest.approx([0.5, 1.0])
    # 0.5 * 0.25 = 0.125 ; 0.5 * 1 = 0.5
    assert kl_per_token(logprobs, ref, "mse").tolist() == pytest.approx([0.125, 0.5])


def test_k3_is_never_negative():
    generator = torch.Generator().manual_seed(0)
    logprobs = -torch.rand(4096, generator=generator) * 20
    ref = -torch.rand(4096, generator=generator) * 20
    assert bool((kl_per_token(logprobs, ref, "k3") >= 0).all())
    tiny = torch.tensor([-1.0, -1.0]) + torch.tensor([1e-7, -1e-7])
    assert bool((kl_per_token(tiny, torch.tensor([-1.0, -1.0]), "k3") >= 0).all())


@pytest.mark.parametrize("estimator", ["k1", "k3", "abs", "mse"])
def test_kl_is_zero_when_policy_equals_reference(estimator):
    # docs/methods.md §4.10: KL must be exactly 0 at step 0 with identical policy and reference
    logprobs = torch.tensor([[-0.3, -2.7, -11.0], [-5.0, -0.01, -1.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    kl = kl_per_token(logprobs, logprobs.clone(), estimator)
    assert torch.count_nonzero(kl) == 0
    assert sequence_kl(kl, mask).tolist() == [0.0, 0.0]


def test_unknown_kl_estimator_names_the_key():
    with pytest.raises(ConfigError, match="ppo.kl.estimator.*allowed: k1, k2, k3, abs, mse"):
        kl_per_token(torch.zeros(2), torch.zeros(2), "k4")


def test_k2_is_the_half_squared_log_ratio():
    assert kl_per_token(torch.tensor([0.5]), torch.tensor([-0.5]), "k2").item() == pytest.approx(0.5)


# ---------------------------------------------------------------- KL-penalised rewards


def test_kl_penalty_and_score_land_on_the_right_tokens():
    # row 0 has 3 tokens, row 1 only 1 (padding carries garbage log-probs)
    logprobs = torch.tensor([[-1.0, -2.0, -0.5], [-1.5, 9.0, 9.0]])
    ref = torch.tensor([[-1.5, -2.0, -1.0], [-1.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    scores = torch.tensor([2.0, -1.0])
    rewards, kl = kl_penalized_rewards(scores, logprobs, ref, mask, beta=0.1)
    # k1 = logp - ref: row 0 [0.5, 0, 0.5] ; row 1 [-0.5, pad 0, pad 0]
    assert rows(kl)[0] == pytest.approx([0.5, 0.0, 0.5])
    assert rows(kl)[1] == pytest.approx([-0.5, 0.0, 0.0])
    # -0.1 * kl, plus the score on the last valid token:
    # row 0: [-0.05, 0, -0.05 + 2 = 1.95] ; row 1: [0.05 - 1 = -0.95, 0, 0]
    assert rows(rewards)[0] == pytest.approx([-0.05, 0.0, 1.95])
    assert rows(rewards)[1] == pytest.approx([-0.95, 0.0, 0.0])


def test_kl_penalized_rewards_rejects_empty_rows_and_bad_scores():
    logprobs = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="rows \\[1\\] have no valid response token"):
        kl_penalized_rewards(torch.zeros(2), logprobs, logprobs, torch.tensor([[1, 0, 0], [0, 0, 0]]), 0.1)
    with pytest.raises(ValueError, match="one per row"):
        kl_penalized_rewards(torch.zeros(3), logprobs, logprobs, torch.ones(2, 3), 0.1)


def test_sequence_kl_sums_valid_tokens():
    kl = torch.tensor([[0.5, -0.25, 0.125], [1.0, 5.0, 5.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    # 0.5 - 0.25 + 0.125 = 0.375 ; 1.0
    assert sequence_kl(kl, mask).tolist() == pytest.approx([0.375, 1.0])


# ---------------------------------------------------------------- diagnostics and reward transforms


def test_explained_variance_by_hand():
    returns = torch.tensor([[1.0, 2.0, 3.0], [4.0, 50.0, 50.0]])
    values = torch.tensor([[1.0, 2.0, 3.0], [3.0, -9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    # R - V over valid = [0, 0, 0, 1]: mean 0.25, var = (3*0.0625 + 0.5625) / 4 = 0.1875
    # Var(R) over [1, 2, 3, 4] = 1.25 -> 1 - 0.1875 / 1.25 = 0.85
    assert float(explained_variance(values, returns, mask)) == pytest.approx(0.85)
    assert math.isnan(float(explained_variance(values, torch.ones(2, 3), mask)))
