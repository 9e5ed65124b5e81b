"""Hand-worked checks of rlhf/rl/group_advantages.py (docs/algorithms.md §1).

One batch serves every estimator: two prompts × four samples, right-padded to T = 4.

    row      0  1  2  3 | 4  5  6  7
    prompt   A  A  A  A | B  B  B  B
    score    1  0  0  0 | 1  1  1  3
    length   4  2  3  1 | 1  4  2  3

Every expected tensor below is a literal worked out in the comment above it.
"""

from __future__ import annotations

import pytest
import torch

from rlhf.rl.group_advantages import (
    global_whiten,
    group_ids_from_size,
    grpo_advantages,
    reinforce_pp_advantages,
    reinforce_pp_baseline_advantages,
    reinforce_pp_returns,
    remax_advantages,
    returns_to_go,
    rloo_advantages,
    validate_groups,
)

SCORES = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 3.0])
GROUPS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
LENGTHS = [4, 2, 3, 1, 1, 4, 2, 3]
MASK = torch.tensor([[1 if t < n else 0 for t in range(4)] for n in LENGTHS])


def assert_rows(got: torch.Tensor, want: list[list[float]], abs_tol: float = 1e-6) -> None:
    assert got.shape == (len(want), len(want[0]))
    assert not torch.isnan(got).any()
    for g, w in zip(got.tolist(), want):
        assert g == pytest.approx(w, abs=abs_tol)


# ---------------------------------------------------------------- GRPO / Dr. GRPO


def test_grpo_sample_std_by_hand():
    """Shao et al. 2024 (DeepSeekMath §4.1.2): Â = (r − mean) / std, sample std (÷ G−1) by default."""
    adv = grpo_advantages(SCORES, GROUPS, MASK, eps=0.0)
    # A: mean 0.25, r − mean = [.75, −.25, −.25, −.25], Σd² = .5625 + 3·.0625 = .75
    #    sample var = .75/3 = .25, std = .5  -> [1.5, −.5, −.5, −.5]
    # B: mean 1.5, r − mean = [−.5, −.5, −.5, 1.5], Σd² = 3·.25 + 2.25 = 3
    #    sample var = 3/3 = 1, std = 1      -> [−.5, −.5, −.5, 1.5]
    # each value on the row's first `length` tokens, 0 on padding
    assert_rows(adv, [
        [1.5, 1.5, 1.5, 1.5],
        [-0.5, -0.5, 0.0, 0.0],
        [-0.5, -0.5, -0.5, 0.0],
        [-0.5, 0.0, 0.0, 0.0],
        [-0.5, 0.0, 0.0, 0.0],
        [-0.5, -0.5, -0.5, -0.5],
        [-0.5, -0.5, 0.0, 0.0],
        [1.5, 1.5, 1.5, 0.0],
    ])


def test_grpo_population_std_and_default_eps_by_hand():
    pop = grpo_advantages(SCORES, GROUPS, MASK, eps=0.0, unbiased=False)
    # A: population var = .75/4 = .1875, std = .4330127 -> .75/.4330127 = 1.7320508 (√3),
    #    −.25/.4330127 = −.5773503 (−1/√3)
    # B: population var = 3/4 = .75, std = .8660254 -> −.5/.8660254 = −.5773503, 1.5/.8660254 = 1.7320508
    assert_rows(pop, [
        [1.7320508, 1.7320508, 1.7320508, 1.7320508],
        [-0.5773503, -0.5773503, 0.0, 0.0],
        [-0.5773503, -0.5773503, -0.5773503, 0.0],
        [-0.5773503, 0.0, 0.0, 0.0],
        [-0.5773503, 0.0, 0.0, 0.0],
        [-0.5773503, -0.5773503, -0.5773503, -0.5773503],
        [-0.5773503, -0.5773503, 0.0, 0.0],
        [1.7320508, 1.7320508, 1.7320508, 0.0],
    ])
    # default ε = 1e-6 is added to std: A row 0 = .75 / .500001 = 1.499997; B row 7 = 1.5 / 1.000001 = 1.4999985
    adv = grpo_advantages(SCORES, GROUPS, MASK)
    assert adv[0, 0].item() == pytest.approx(1.499997, abs=1e-6)
    assert adv[7, 0].item() == pytest.approx(1.4999985, abs=1e-6)


def test_dr_grpo_unscaled_by_hand():
    """Liu et al. 2025 (Dr. GRPO, §3): Â = r − mean, no std."""
    adv = grpo_advantages(SCORES, GROUPS, MASK, scale_std=False)
    # A: [1 − .25, 0 − .25, 0 − .25, 0 − .25] = [.75, −.25, −.25, −.25]
    # B: [1 − 1.5, 1 − 1.5, 1 − 1.5, 3 − 1.5] = [−.5, −.5, −.5, 1.5]
    assert_rows(adv, [
        [0.75, 0.75, 0.75, 0.75],
        [-0.25, -0.25, 0.0, 0.0],
        [-0.25, -0.25, -0.25, 0.0],
        [-0.25, 0.0, 0.0, 0.0],
        [-0.5, 0.0, 0.0, 0.0],
        [-0.5, -0.5, -0.5, -0.5],
        [-0.5, -0.5, 0.0, 0.0],
        [1.5, 1.5, 1.5, 0.0],
    ])


def test_group_ids_as_int_and_in_any_order_give_the_same_rows():
    by_int = grpo_advantages(SCORES, 4, MASK, eps=0.0)
    assert torch.equal(by_int, grpo_advantages(SCORES, GROUPS, MASK, eps=0.0))
    # interleave the prompts (ids 9 / 5, not 0 / 1): row k of the shuffled batch is row perm[k]
    perm = torch.tensor([4, 0, 5, 1, 6, 2, 7, 3])
    ids = torch.tensor([9, 5, 9, 5, 9, 5, 9, 5])
    shuffled = grpo_advantages(SCORES[perm], ids, MASK[perm], eps=0.0)
    # row 0 of the shuffled batch is old row 4 (B, length 1, −.5); row 1 is old row 0 (A, 1.5 × 4)
    assert shuffled[0].tolist() == pytest.approx([-0.5, 0.0, 0.0, 0.0])
    assert shuffled[1].tolist() == pytest.approx([1.5, 1.5, 1.5, 1.5])
    assert torch.allclose(shuffled, by_int[perm])


# ---------------------------------------------------------------- RLOO


def test_rloo_by_hand():
    """Ahmadian et al. 2024 (§3): A_i = r_i − mean of the other G − 1 = 3 scores of its prompt."""
    adv = rloo_advantages(SCORES, GROUPS, MASK)
    # A: row 0: 1 − (0+0+0)/3 = 1 ; rows 1–3: 0 − (1+0+0)/3 = −1/3 = −.3333333
    # B: rows 4–6: 1 − (1+1+3)/3 = 1 − 5/3 = −.6666667 ; row 7: 3 − (1+1+1)/3 = 2
    third, two_thirds = 1.0 / 3.0, 2.0 / 3.0
    assert_rows(adv, [
        [1.0, 1.0, 1.0, 1.0],
        [-third, -third, 0.0, 0.0],
        [-third, -third, -third, 0.0],
        [-third, 0.0, 0.0, 0.0],
        [-two_thirds, 0.0, 0.0, 0.0],
        [-two_thirds, -two_thirds, -two_thirds, -two_thirds],
        [-two_thirds, -two_thirds, 0.0, 0.0],
        [2.0, 2.0, 2.0, 0.0],
    ])


# ---------------------------------------------------------------- ReMax


def test_remax_by_hand():
    """Li et al. 2023 (ReMax §4): A_i = r(x, y_i) − r(x, ŷ), greedy ŷ of prompt A scores .5, of B 2."""
    greedy = torch.tensor([0.5, 0.5, 0.5, 0.5, 2.0, 2.0, 2.0, 2.0])
    adv = remax_advantages(SCORES, greedy, MASK)
    # A: [1 − .5, 0 − .5, 0 − .5, 0 − .5] = [.5, −.5, −.5, −.5] ; B: [−1, −1, −1, 3 − 2 = 1]
    assert_rows(adv, [
        [0.5, 0.5, 0.5, 0.5],
        [-0.5, -0.5, 0.0, 0.0],
        [-0.5, -0.5, -0.5, 0.0],
        [-0.5, 0.0, 0.0, 0.0],
        [-1.0, 0.0, 0.0, 0.0],
        [-1.0, -1.0, -1.0, -1.0],
        [-1.0, -1.0, 0.0, 0.0],
        [1.0, 1.0, 1.0, 0.0],
    ])


# ---------------------------------------------------------------- REINFORCE++

# per-token KL (k1 of the rollout policy to the reference); 9.0 on padding must be ignored
KL = torch.tensor([
    [0.5, 0.5, 0.0, 0.0],
    [0.0, 0.0, 9.0, 9.0],
    [0.0, 0.0, 0.0, 9.0],
    [0.0, 9.0, 9.0, 9.0],
    [0.0, 9.0, 9.0, 9.0],
    [0.0, 0.0, 1.0, 1.0],
    [0.0, 0.0, 9.0, 9.0],
    [0.0, 0.0, 0.0, 9.0],
])


def test_reinforce_pp_returns_by_hand():
    """Hu 2025 (REINFORCE++ §3): r_t = −β KL_t (+ score on the last token), G_t = Σ_{s≥t} r_s."""
    returns = reinforce_pp_returns(SCORES, MASK, kl=KL, beta=0.1)
    # row 0: r = [−.05, −.05, 0, 1]  -> G = [.9, .95, 1, 1]
    # row 5: r = [0, 0, −.1, −.1 + 1] -> G = [.8, .8, .8, .9]
    # other rows have KL 0: every token's return is the score
    assert_rows(returns, [
        [0.9, 0.95, 1.0, 1.0],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0],
        [0.8, 0.8, 0.8, 0.9],
        [1.0, 1.0, 0.0, 0.0],
        [3.0, 3.0, 3.0, 0.0],
    ])


def test_returns_to_go_discount_by_hand():
    rewards = torch.tensor([[-0.05, -0.05, 0.0, 1.0], [2.0, 7.0, 7.0, 7.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]])
    # γ = .5, row 0: G3 = 1, G2 = 0 + .5·1 = .5, G1 = −.05 + .5·.5 = .2, G0 = −.05 + .5·.2 = .05
    # row 1: one token, G0 = 2 (the 7s are padding)
    assert_rows(returns_to_go(rewards, mask, gamma=0.5), [[0.05, 0.2, 0.5, 1.0], [2.0, 0.0, 0.0, 0.0]])


def test_reinforce_pp_global_whitening_by_hand():
    adv = reinforce_pp_advantages(SCORES, MASK, kl=KL, beta=0.1, eps=0.0)
    # the 20 valid returns from test_reinforce_pp_returns_by_hand:
    #   Σ G  = 3.85 (row 0) + 1 (row 4) + 3.3 (row 5) + 2 (row 6) + 9 (row 7) = 19.15 ; μ = .9575
    #   Σ G² = 3.7125 + 1 + 2.73 + 2 + 27 = 36.4425 ; E[G²] = 1.822125
    #   σ² = 1.822125 − .9575² = .90531875 ; σ = .9514824 (population)
    # (G − μ)/σ: .9 -> −.060432, .95 -> −.007882, 1 -> .044667, 0 -> −1.006324,
    #            .8 -> −.165531, 3 -> 2.146650
    a, b, one, zero, c, three = -0.060432, -0.007882, 0.044667, -1.006324, -0.165531, 2.14665
    assert_rows(adv, [
        [a, b, one, one],
        [zero, zero, 0.0, 0.0],
        [zero, zero, zero, 0.0],
        [zero, 0.0, 0.0, 0.0],
        [one, 0.0, 0.0, 0.0],
        [c, c, c, a],
        [one, one, 0.0, 0.0],
        [three, three, three, 0.0],
    ])


def test_reinforce_pp_baseline_by_hand():
    """REINFORCE++-baseline: score − group mean first, then the KL token rewards, then global whitening."""
    adv = reinforce_pp_baseline_advantages(SCORES, GROUPS, MASK, kl=KL, beta=0.1, eps=0.0)
    # centred scores (group means .25 and 1.5): [.75, −.25, −.25, −.25, −.5, −.5, −.5, 1.5]
    # returns: row 0: r = [−.05, −.05, 0, .75] -> [.65, .7, .75, .75]
    #          row 5: r = [0, 0, −.1, −.1 − .5] -> [−.7, −.7, −.7, −.6]
    #          rows 1–3: −.25 ; row 4, 6: −.5 ; row 7: 1.5
    #   Σ G  = 2.85 − .5 − .75 − .25 − .5 − 2.7 − 1 + 4.5 = 1.65 ; μ = .0825
    #   Σ G² = 2.0375 + .125 + .1875 + .0625 + .25 + 1.83 + .5 + 6.75 = 11.7425 ; E[G²] = .587125
    #   σ² = .587125 − .0825² = .58031875 ; σ = .7617866
    # (G − μ)/σ: .65 -> .744959, .7 -> .810595, .75 -> .876230, −.25 -> −.436474,
    #            −.5 -> −.764650, −.7 -> −1.027191, −.6 -> −.895920, 1.5 -> 1.860757
    q, w, e = 0.744959, 0.810595, 0.87623
    r4, r5, r6, r7 = -0.436474, -0.76465, -1.027191, 1.860757
    assert_rows(adv, [
        [q, w, e, e],
        [r4, r4, 0.0, 0.0],
        [r4, r4, r4, 0.0],
        [r4, 0.0, 0.0, 0.0],
        [r5, 0.0, 0.0, 0.0],
        [r6, r6, r6, -0.89592],
        [r5, r5, 0.0, 0.0],
        [r7, r7, r7, 0.0],
    ])


def test_global_whiten_runs_on_a_gathered_batch():
    # "rank 0" holds rows 1–4 (longest 3 tokens, so its local T = 3), "rank 1" rows 0, 5, 6, 7
    # (T = 4). Each computes its returns locally; the gathered batch (rank 0 padded to T = 4 with
    # mask 0) whitened once equals the single-process answer on the same rows.
    r0, r1 = [1, 2, 3, 4], [0, 5, 6, 7]
    local0 = reinforce_pp_returns(SCORES[r0], MASK[r0, :3], kl=KL[r0, :3], beta=0.1)
    local1 = reinforce_pp_returns(SCORES[r1], MASK[r1], kl=KL[r1], beta=0.1)
    gathered = torch.cat([torch.nn.functional.pad(local0, (0, 1)), local1])
    gathered_mask = torch.cat([torch.nn.functional.pad(MASK[r0, :3], (0, 1)), MASK[r1]])
    whole = reinforce_pp_advantages(SCORES, MASK, kl=KL, beta=0.1, eps=0.0)
    assert torch.allclose(global_whiten(gathered, gathered_mask, eps=0.0), whole[r0 + r1], atol=1e-6)
    # and it differs from whitening one rank alone (rank 1's own mean and std)
    alone = global_whiten(local1, MASK[r1], eps=0.0)
    assert not torch.allclose(alone, whole[r1], atol=1e-3)


# ---------------------------------------------------------------- equal rewards: exactly 0, no NaN


def test_equal_reward_groups_give_exact_zero_and_no_nan():
    # prompt A's four samples all score .1 (not exactly representable: the mean 4·.1/4 rounds);
    # prompt B keeps [1, 0, 0, 0]
    scores = torch.tensor([0.1, 0.1, 0.1, 0.1, 1.0, 0.0, 0.0, 0.0])
    for eps in (0.0, 1e-6):
        for scale in (True, False):
            adv = grpo_advantages(scores, GROUPS, MASK, scale_std=scale, eps=eps)
            assert not torch.isnan(adv).any()
            assert torch.equal(adv[:4], torch.zeros(4, 4))
    # prompt B in the same call still gets its sample-std advantages [1.5, −.5, −.5, −.5]
    assert grpo_advantages(scores, GROUPS, MASK, eps=0.0)[4:, 0].tolist() == pytest.approx([1.5, -0.5, -0.5, -0.5])
    assert torch.equal(rloo_advantages(scores, GROUPS, MASK)[:4], torch.zeros(4, 4))


def test_equal_rewards_stay_exactly_zero_when_the_mean_rounds():
    # in float32, (.9 + .9 + .9)/3 − .9 = 6e-8, which a division by std + 1e-6 would turn into .06:
    # groups of 3 equal scores must still give exactly 0
    scores = torch.tensor([0.9, 0.9, 0.9, 1.0, 0.0, 0.0])
    mask = torch.tensor([[1, 1], [1, 0], [1, 1], [1, 1], [1, 0], [1, 1]])
    for adv in (grpo_advantages(scores, 3, mask), rloo_advantages(scores, 3, mask)):
        assert torch.equal(adv[:3], torch.zeros(3, 2))
    assert torch.equal(reinforce_pp_advantages(torch.full((6,), 0.9), mask), torch.zeros(6, 2))


def test_all_equal_scores_whiten_to_exact_zero():
    scores = torch.full((8,), 0.1)
    # baseline: every centred score is 0; plain REINFORCE++ (β = 0, γ = 1): every return is .1
    for adv in (
        reinforce_pp_baseline_advantages(scores, 4, MASK),
        reinforce_pp_advantages(scores, MASK),
    ):
        assert not torch.isnan(adv).any()
        assert torch.equal(adv, torch.zeros(8, 4))


# ---------------------------------------------------------------- group structure errors


def test_a_group_of_one_sample_is_rejected():
    ids = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2])
    for fn in (grpo_advantages, rloo_advantages, reinforce_pp_baseline_advantages):
        with pytest.raises(ValueError, match=r"need >= 2 samples per prompt.*\{2: 1\}"):
            fn(SCORES, ids, MASK)


def test_batch_without_whole_groups_names_the_counts():
    ids = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"whole groups of 4 .*\{0: 3, 1: 5\}"):
        validate_groups(ids, group_size=4)
    with pytest.raises(ValueError, match=r"whole groups of 4"):
        grpo_advantages(SCORES, ids, MASK, group_size=4)
    with pytest.raises(ValueError, match=r"8 rows does not hold whole groups of 3 .*2 rows left over"):
        group_ids_from_size(8, 3)
    with pytest.raises(ValueError, match=r"8 rows does not hold whole groups of 3"):
        grpo_advantages(SCORES, 3, MASK)


def test_validate_groups_returns_inverse_and_counts():
    inverse, counts = validate_groups(torch.tensor([7, 3, 7, 3, 3]))
    # sorted ids [3, 7]: rows -> [1, 0, 1, 0, 0], counts [3, 2]
    assert inverse.tolist() == [1, 0, 1, 0, 0]
    assert counts.tolist() == [3, 2]


def test_shape_and_input_errors():
    with pytest.raises(ValueError, match="one per row"):
        grpo_advantages(SCORES[:7], GROUPS[:7], MASK)
    with pytest.raises(ValueError, match="right-padded"):
        rloo_advantages(SCORES[:2], 2, torch.tensor([[1, 1], [0, 1]]))
    with pytest.raises(ValueError, match="integers"):
        validate_groups(GROUPS.float())
    with pytest.raises(ValueError, match="needs the per-token kl"):
        reinforce_pp_returns(SCORES, MASK, kl=None, beta=0.1)
    with pytest.raises(ValueError, match="no valid response token"):
        reinforce_pp_returns(SCORES[:2], torch.tensor([[1, 0], [0, 0]]))
