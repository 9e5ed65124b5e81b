"""Hand-worked checks of rlhf/rl/policy_objectives.py (docs/algorithms.md §1, §2).

The batch: two prompts × four samples, right-padded to T = 3, with GRPO's sample-std advantages of
prompt scores A = [1, 0, 0, 0] -> [1.5, −.5, −.5, −.5] and B = [1, 1, 1, 3] -> [−.5, −.5, −.5, 1.5]
(worked in tests/rl/test_group_advantages.py), reordered so the interesting cases sit together:

    row        0     1     2     3     4     5     6     7
    Â        1.5   −.5   −.5   −.5   −.5   −.5   −.5   1.5
    length     3     1     2     3     2     3     1     2

Every expected number is a literal worked out in the comment above it.
"""

from __future__ import annotations

import math

import pytest
import torch

from rlhf.rl.policy_objectives import (
    aggregate_loss,
    clipped_surrogate,
    gspo_loss,
    gspo_sequence_ratio,
    k2_kl,
    overlong_penalty,
)

LENGTHS = [3, 1, 2, 3, 2, 3, 1, 2]
MASK = torch.tensor([[1 if t < n else 0 for t in range(3)] for n in LENGTHS])
SEQ_ADV = torch.tensor([1.5, -0.5, -0.5, -0.5, -0.5, -0.5, -0.5, 1.5], dtype=torch.float64)
ADV = SEQ_ADV.unsqueeze(1).expand(8, 3) * MASK  # GRPO's broadcast form, 0 on padding

PAD = 50.0  # garbage log-ratio on padding: exp(50) would dominate any unmasked statistic


def assert_rows(got: torch.Tensor, want: list[list[float]], abs_tol: float = 1e-6) -> None:
    assert got.shape == (len(want), len(want[0]))
    for g, w in zip(got.tolist(), want):
        assert g == pytest.approx(w, abs=abs_tol)


def log_ratios(rows: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(logprobs, old_logprobs) whose difference is `rows` on valid tokens and PAD after."""
    padded = [r + [PAD] * (3 - len(r)) for r in rows]
    logprobs = torch.tensor(padded, dtype=torch.float64) - 2.0
    return logprobs, torch.full_like(logprobs, -2.0)


# ratios ρ per valid token; log ρ is what goes in
RATIOS = [[1.0, 1.25, 1.5], [5.0], [0.5, 0.9], [2.0, 1.0, 8.0], [0.75, 1.1], [1.0, 1.0, 1.0], [1.3], [0.5, 1.3]]
LOGPROBS, OLD = log_ratios([[math.log(r) for r in row] for row in RATIOS])


# ---------------------------------------------------------------- clipped surrogate


def test_clip_higher_with_dual_clip_by_hand():
    """DAPO clip-higher (Yu et al. 2025 §3.1): ε_low .2, ε_high .28; dual-clip c = 3 (Ye et al. 2020)."""
    loss, stats = clipped_surrogate(LOGPROBS, OLD, ADV, MASK, clip_low=0.2, clip_high=0.28, dual_clip=3.0)
    # ℓ = −max(min(ρÂ, clip(ρ, .8, 1.28)Â), 3Â if Â < 0)
    # row 0 (Â 1.5): ρ 1    -> −1.5
    #                ρ 1.25 -> 1.25 < 1.28, not clipped: −1.875
    #                ρ 1.5  -> min(2.25, 1.28·1.5 = 1.92) = 1.92: −1.92           [clip high]
    # row 1 (Â −.5): ρ 5    -> min(−2.5, −.64) = −2.5, dual max(−2.5, −1.5) = −1.5: 1.5 [dual]
    # row 2 (Â −.5): ρ .5   -> min(−.25, .8·−.5 = −.4) = −.4: .4                  [clip low]
    #                ρ .9   -> −.45: .45
    # row 3 (Â −.5): ρ 2    -> min(−1, −.64) = −1, bound −1.5 not reached: 1.0
    #                ρ 1    -> .5
    #                ρ 8    -> min(−4, −.64) = −4, dual −1.5: 1.5                 [dual]
    # row 4 (Â −.5): ρ .75  -> min(−.375, −.4) = −.4: .4                          [clip low]
    #                ρ 1.1  -> −.55: .55
    # row 5: ρ 1, 1, 1 -> .5 each
    # row 6 (Â −.5): ρ 1.3  -> min(−.65, −.64) = −.65: .65 (the ratio side wins for Â < 0)
    # row 7 (Â 1.5): ρ .5   -> min(.75, 1.2) = .75: −.75 (no lower clip for Â > 0)
    #                ρ 1.3  -> min(1.95, 1.92) = 1.92: −1.92                      [clip high]
    assert_rows(loss, [
        [-1.5, -1.875, -1.92],
        [1.5, 0.0, 0.0],
        [0.4, 0.45, 0.0],
        [1.0, 0.5, 1.5],
        [0.4, 0.55, 0.0],
        [0.5, 0.5, 0.5],
        [0.65, 0.0, 0.0],
        [-0.75, -1.92, 0.0],
    ])
    # 17 valid tokens. clipped term strictly smaller: rows 0t2, 2t0, 4t0, 7t1 -> 4/17
    #   high side (Â > 0): 0t2, 7t1 -> 2/17 ; low side (Â < 0): 2t0, 4t0 -> 2/17 ; dual: 1t0, 3t2 -> 2/17
    assert stats["clipfrac"].item() == pytest.approx(4 / 17)
    assert stats["clipfrac_high"].item() == pytest.approx(2 / 17)
    assert stats["clipfrac_low"].item() == pytest.approx(2 / 17)
    assert stats["dual_clipfrac"].item() == pytest.approx(2 / 17)
    # ratio_mean: Σρ = 3.75 + 5 + 1.4 + 11 + 1.85 + 3 + 1.3 + 1.8 = 29.1 -> 29.1/17 = 1.7117647
    assert stats["ratio_mean"].item() == pytest.approx(1.7117647, abs=1e-6)
    # approx_kl = mean((ρ − 1) − log ρ): 1.25 -> .026856, 1.5 -> .094535, 5 -> 2.390562, .5 -> .193147,
    #   .9 -> .005361, 2 -> .306853, 8 -> 4.920558, .75 -> .037682, 1.1 -> .004690, 1.3 -> .037636, 1 -> 0
    #   Σ = .121391 + 2.390562 + .198508 + 5.227411 + .042372 + 0 + .037636 + .230783 = 8.248663
    #   -> 8.248663/17 = .485215
    assert stats["approx_kl"].item() == pytest.approx(0.485215, abs=1e-5)


def test_without_dual_clip_large_ratio_on_negative_advantage_is_unbounded():
    loss, stats = clipped_surrogate(LOGPROBS, OLD, ADV, MASK, clip_low=0.2, clip_high=0.28)
    # row 1: ρ 5, Â −.5 -> −min(−2.5, −.64) = 2.5 (vs 1.5 with c = 3);
    # row 3 t2: ρ 8 -> 4.0 (vs 1.5); row 3 t0: ρ 2 -> 1.0 in both (−1 is above the bound −1.5)
    assert loss[1, 0].item() == pytest.approx(2.5)
    assert loss[3].tolist() == pytest.approx([1.0, 0.5, 4.0])
    assert stats["dual_clipfrac"].item() == 0.0


def test_symmetric_clip_differs_from_clip_higher_only_on_the_high_side():
    loss, _ = clipped_surrogate(LOGPROBS, OLD, ADV, MASK, clip_low=0.2, dual_clip=3.0)
    # ε = .2 both sides, upper bound 1.2:
    # row 0 t1: ρ 1.25 now clipped: min(1.875, 1.2·1.5 = 1.8) -> −1.8 (was −1.875 with ε_high .28)
    # row 0 t2: ρ 1.5 -> −1.8 (was −1.92) ; row 7 t1: ρ 1.3 -> −1.8 (was −1.92)
    # low side unchanged (same ε_low): row 2 t0 .4, row 4 t0 .4 ; row 6: ρ 1.3, Â −.5 -> .65 as before
    assert_rows(loss, [
        [-1.5, -1.8, -1.8],
        [1.5, 0.0, 0.0],
        [0.4, 0.45, 0.0],
        [1.0, 0.5, 1.5],
        [0.4, 0.55, 0.0],
        [0.5, 0.5, 0.5],
        [0.65, 0.0, 0.0],
        [-0.75, -1.8, 0.0],
    ])


def test_asymmetric_low_side_uses_eps_low_not_eps_high():
    # ε_low .2, ε_high .28: ρ .75 with Â −.5 is below 1 − .2 = .8 -> clipped to .8: loss .4.
    # Had ε_high (.28) been used on the low side, .75 > .72 would pass unclipped: loss .375.
    loss, _ = clipped_surrogate(LOGPROBS, OLD, ADV, MASK, clip_low=0.2, clip_high=0.28)
    assert loss[4, 0].item() == pytest.approx(0.4)
    # and a wider low side ε_low .3 (bound .7) leaves it unclipped: .75·.5 = .375
    wide, _ = clipped_surrogate(LOGPROBS, OLD, ADV, MASK, clip_low=0.3, clip_high=0.28)
    assert wide[4, 0].item() == pytest.approx(0.375)


def test_dual_clip_gradient_is_zero_where_the_bound_is_taken():
    logprobs = LOGPROBS.clone().requires_grad_(True)
    loss, _ = clipped_surrogate(logprobs, OLD, ADV, MASK, clip_low=0.2, clip_high=0.28, dual_clip=3.0)
    loss.sum().backward()
    # row 1 t0 and row 3 t2 take the constant −3Â: no gradient. Row 3 t0 (ρ 2, unclipped):
    # ∂(−ρÂ)/∂log π = −ρÂ = −2·(−.5) = 1. Padding: 0.
    assert logprobs.grad[1].tolist() == pytest.approx([0.0, 0.0, 0.0])
    assert logprobs.grad[3].tolist() == pytest.approx([1.0, 0.5, 0.0])


def test_garbage_on_padding_gives_no_nan_gradient():
    # float32, log-ratio 100 on padding (exp overflows to inf): loss and gradient stay finite
    logprobs = torch.tensor([[0.1, 100.0], [0.0, 100.0]], requires_grad=True)
    old = torch.zeros(2, 2)
    mask = torch.tensor([[1, 0], [1, 0]])
    adv = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    loss, stats = clipped_surrogate(logprobs, old, adv, mask, dual_clip=3.0)
    aggregate_loss(loss, mask, "token_mean").backward()
    assert torch.isfinite(logprobs.grad).all() and torch.isfinite(stats["ratio_mean"])
    assert logprobs.grad[:, 1].tolist() == [0.0, 0.0]


def test_clip_argument_errors():
    with pytest.raises(ValueError, match="dual_clip c must be > 1"):
        clipped_surrogate(LOGPROBS, OLD, ADV, MASK, dual_clip=1.0)
    with pytest.raises(ValueError, match="mask's shape"):
        clipped_surrogate(LOGPROBS, OLD, SEQ_ADV, MASK)


# ---------------------------------------------------------------- aggregation


# the dual-clip per-token loss above, as a literal
PER_TOKEN = torch.tensor([
    [-1.5, -1.875, -1.92],
    [1.5, 7.0, 7.0],   # 7.0 on padding must not count
    [0.4, 0.45, 7.0],
    [1.0, 0.5, 1.5],
    [0.4, 0.55, 7.0],
    [0.5, 0.5, 0.5],
    [0.65, 7.0, 7.0],
    [-0.75, -1.92, 7.0],
])


def test_three_aggregations_differ_on_the_same_ragged_batch():
    # row sums: −5.295, 1.5, .85, 3.0, .95, 1.5, .65, −2.67 -> total .485 over 17 tokens
    # token_mean (DAPO §3.3): .485/17 = .0285294
    assert aggregate_loss(PER_TOKEN, MASK, "token_mean").item() == pytest.approx(0.0285294, abs=1e-6)
    # seq_mean_token_mean (GRPO eq. 3): row means −1.765, 1.5, .425, 1.0, .475, .5, .65, −1.335
    #   Σ = 1.45 -> 1.45/8 = .18125
    assert aggregate_loss(PER_TOKEN, MASK, "seq_mean_token_mean").item() == pytest.approx(0.18125, abs=1e-6)
    # seq_mean_token_sum_norm (Dr. GRPO §3), C = 3 (max length): (1/8)Σ_i sum_i/3 = .485/24 = .0202083
    got = aggregate_loss(PER_TOKEN, MASK, "seq_mean_token_sum_norm", norm_constant=3).item()
    assert got == pytest.approx(0.0202083, abs=1e-6)
    # C = 4 (a larger budget): .485/32 = .0151563
    got = aggregate_loss(PER_TOKEN, MASK, "seq_mean_token_sum_norm", norm_constant=4).item()
    assert got == pytest.approx(0.0151563, abs=1e-6)


def test_aggregation_ignores_empty_rows_and_checks_its_arguments():
    per_token = torch.tensor([[2.0, 4.0], [9.0, 9.0]])
    mask = torch.tensor([[1, 1], [0, 0]])
    # the all-padding row is not a sample: every mode sees one row of [2, 4]
    assert aggregate_loss(per_token, mask, "token_mean").item() == pytest.approx(3.0)
    assert aggregate_loss(per_token, mask, "seq_mean_token_mean").item() == pytest.approx(3.0)
    assert aggregate_loss(per_token, mask, "seq_mean_token_sum_norm", norm_constant=2).item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="needs norm_constant > 0"):
        aggregate_loss(per_token, mask, "seq_mean_token_sum_norm")
    with pytest.raises(ValueError, match="unknown loss aggregation 'sum'"):
        aggregate_loss(per_token, mask, "sum")


# ---------------------------------------------------------------- GSPO


def test_gspo_ratio_is_exp_of_the_mean_log_ratio():
    """Zheng et al. 2025 (GSPO §4.1): s_i = exp((1/|y_i|) Σ_t log ρ_{i,t}), padding ignored."""
    logprobs, old = log_ratios([
        [0.2, -0.2, 0.3], [-0.4], [0.1, 0.3], [0.0, 0.0, 0.0],
        [0.5, -0.5], [0.3, 0.3, -0.3], [0.7], [-0.1, -0.3],
    ])
    s = gspo_sequence_ratio(logprobs, old, MASK)
    # means: .3/3 = .1, −.4, .4/2 = .2, 0, 0, .3/3 = .1, .7, −.4/2 = −.2
    # exp:   1.1051709, .6703200, 1.2214028, 1, 1, 1.1051709, 2.0137527, .8187308
    assert s.tolist() == pytest.approx(
        [1.1051709, 0.67032, 1.2214028, 1.0, 1.0, 1.1051709, 2.0137527, 0.8187308], abs=1e-6
    )


# log-ratios of order 1e-3 so that GSPO's narrow range (3e-4, 4e-4) matters
GSPO_ROWS = [
    [0.002, -0.001, 0.002],  # mean  .001
    [-0.001],                # mean −.001
    [0.0003, 0.0001],        # mean  .0002
    [0.001, 0.001, 0.001],   # mean  .001
    [0.0005, -0.0005],       # mean  0
    [0.0, -0.0003, -0.0003],  # mean −.0002
    [0.0005],                # mean  .0005
    [0.0004, 0.0003],        # mean  .00035
]


def test_gspo_sequence_loss_by_hand():
    logprobs, old = log_ratios(GSPO_ROWS)
    loss, stats = gspo_loss(logprobs, old, SEQ_ADV, MASK)  # ε_l 3e-4, ε_r 4e-4: clip to [.9997, 1.0004]
    # ℓ_i = −min(s_i Â_i, clip(s_i) Â_i):
    # row 0: s = e^.001 = 1.0010005, Â 1.5: min(1.5015008, 1.0004·1.5 = 1.5006) -> −1.5006      [clipped]
    # row 1: s = e^−.001 = .9990005, Â −.5: min(−.4995002, .9997·−.5 = −.49985) -> .49985       [clipped]
    # row 2: s = e^.0002 = 1.0002000 inside -> .5·1.0002000 = .5001000
    # row 3: s = 1.0010005 above the range but Â < 0: min(−.5005003, −.5002) = −.5005003 -> .5005003
    # row 4: s = 1 -> .5
    # row 5: s = e^−.0002 = .9998000 inside -> .4999000
    # row 6: s = e^.0005 = 1.0005001, Â < 0 -> .5002501
    # row 7: s = e^.00035 = 1.0003501 inside (< 1.0004; a symmetric 3e-4 would clip it) -> −1.5005251
    per_seq = [-1.5006, 0.49985, 0.5001, 0.5005003, 0.5, 0.4999, 0.5002501, -1.5005251]
    # each row's loss sits on each of its valid tokens
    assert_rows(loss, [[v if t < n else 0.0 for t in range(3)] for v, n in zip(per_seq, LENGTHS)])
    # the paper's (1/G) Σ_i ℓ_i: Σ = −.0005248 -> /8 = −.0000656
    assert aggregate_loss(loss, MASK, "seq_mean_token_mean").item() == pytest.approx(-6.5595e-05, abs=1e-8)
    # clipped sequences: rows 0 and 1 -> 2/8
    assert stats["clipfrac"].item() == pytest.approx(0.25)
    # the broadcast [B, T] advantages give the same loss
    assert torch.allclose(gspo_loss(logprobs, old, ADV, MASK)[0], loss)


def test_gspo_sequence_gradient_by_hand():
    logprobs, old = log_ratios(GSPO_ROWS)
    logprobs.requires_grad_(True)
    loss, _ = gspo_loss(logprobs, old, SEQ_ADV, MASK)
    aggregate_loss(loss, MASK, "seq_mean_token_mean").backward()
    # J = (1/8) Σ_i ℓ_i; unclipped ℓ_i = −s_i Â_i with ∂s_i/∂log π_{i,t} = s_i/|y_i|, so
    # ∂J/∂log π_{i,t} = −Â_i s_i / (8 |y_i|) on every valid token of row i; clipped rows: 0.
    # row 0: clipped -> 0 ; row 2: .5·1.0002000/16 = .0312563 ; row 7: −1.5·1.0003501/16 = −.0937828
    # row 3 (|y| 3): .5·1.0010005/24 = .0208542
    assert logprobs.grad[0].tolist() == pytest.approx([0.0, 0.0, 0.0])
    assert logprobs.grad[2].tolist() == pytest.approx([0.0312563, 0.0312563, 0.0], abs=1e-7)
    assert logprobs.grad[3].tolist() == pytest.approx([0.0208542] * 3, abs=1e-7)
    assert logprobs.grad[7].tolist() == pytest.approx([-0.0937828, -0.0937828, 0.0], abs=1e-7)


def test_gspo_token_matches_the_sequence_form_in_value_and_gradient():
    """GSPO-token (Zheng et al. 2025 §4.3): s_{i,t} = sg[s_i]·π/sg[π]; equal Â per row -> same as GSPO."""
    seq_lp, old = log_ratios(GSPO_ROWS)
    tok_lp = seq_lp.clone()
    seq_lp.requires_grad_(True)
    tok_lp.requires_grad_(True)
    seq_loss, _ = gspo_loss(seq_lp, old, SEQ_ADV, MASK)
    tok_loss, tok_stats = gspo_loss(tok_lp, old, ADV, MASK, token_level=True)
    assert torch.allclose(tok_loss, seq_loss, atol=1e-12)
    aggregate_loss(seq_loss, MASK, "seq_mean_token_mean").backward()
    aggregate_loss(tok_loss, MASK, "seq_mean_token_mean").backward()
    assert torch.allclose(tok_lp.grad, seq_lp.grad, atol=1e-12)
    # clipped tokens: every token of rows 0 and 1 -> (3 + 1)/17
    assert tok_stats["clipfrac"].item() == pytest.approx(4 / 17)


def test_gspo_token_with_per_token_advantages_by_hand():
    # row 2 (s = 1.0002000, inside the range) with token advantages [2, −1]:
    # ℓ = [−2·1.0002000, 1.0002000] = [−2.0004, 1.0002];
    # ∂ℓ_t/∂log π_{2,t} = −Â_t s (each token's own gradient only): [−2.0004, 1.0002]
    logprobs, old = log_ratios(GSPO_ROWS)
    logprobs.requires_grad_(True)
    adv = ADV.clone()
    adv[2, :2] = torch.tensor([2.0, -1.0], dtype=torch.float64)
    loss, _ = gspo_loss(logprobs, old, adv, MASK, token_level=True)
    assert loss[2].tolist() == pytest.approx([-2.0004, 1.0002, 0.0], abs=1e-6)
    loss[2].sum().backward()
    assert logprobs.grad[2].tolist() == pytest.approx([-2.0004, 1.0002, 0.0], abs=1e-6)
    # the sequence form refuses advantages that vary within a row
    with pytest.raises(ValueError, match="one advantage per sequence"):
        gspo_loss(logprobs, old, adv, MASK)


# ---------------------------------------------------------------- k2


def test_k2_is_half_squared_log_ratio():
    # log π − log π_ref = .5 -> .125 ; −2 -> 2.0 ; 0 -> 0
    logprobs = torch.tensor([[-1.0, -3.0, -2.0]])
    ref = torch.tensor([[-1.5, -1.0, -2.0]])
    assert k2_kl(logprobs, ref)[0].tolist() == pytest.approx([0.125, 2.0, 0.0])


# ---------------------------------------------------------------- DAPO overlong


def test_overlong_penalty_three_regimes():
    """DAPO (Yu et al. 2025 §3.4): L_max 20, L_cache 4, soft window (16, 20]."""
    lengths = torch.tensor([3, 16, 17, 18, 19, 20, 24, 12])
    # ≤ 16 -> 0 ; 17 -> (16 − 17)/4 = −.25 ; 18 -> −.5 ; 19 -> −.75 ; 20 -> −1 ; > 20 -> −1
    got = overlong_penalty(lengths, max_length=20, cache_length=4)
    assert got.tolist() == pytest.approx([0.0, 0.0, -0.25, -0.5, -0.75, -1.0, -1.0, 0.0])
    with pytest.raises(ValueError, match="0 < cache_length <= max_length"):
        overlong_penalty(lengths, max_length=20, cache_length=0)


@pytest.mark.parametrize("mode", ["seq_mean_token_mean", "seq_mean_token_sum_norm"])
def test_aggregation_weights_summed_over_slices_give_the_one_batch_loss(mode):
    from rlhf.rl.policy_objectives import aggregation_weights

    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
    loss = torch.tensor([[1.0, 2.0, 3.0, 9.0], [4.0, 9.0, 9.0, 9.0], [1.0, 1.0, 1.0, 1.0], [2.0, 6.0, 9.0, 9.0]])
    # by hand: seq_mean_token_mean = (2 + 4 + 1 + 4) / 4 = 2.75; sum_norm (C = 4) = (6 + 4 + 4 + 8) / 4 / 4 = 1.375
    expected = {"seq_mean_token_mean": 2.75, "seq_mean_token_sum_norm": 1.375}[mode]
    whole = (loss * aggregation_weights(mask, mode, 4, norm_constant=4)).sum()
    sliced = sum((loss[rows] * aggregation_weights(mask[rows], mode, 4, norm_constant=4)).sum()
                 for rows in ([0, 3], [1], [2]))
    assert float(whole) == pytest.approx(expected)
    assert float(sliced) == pytest.approx(expected)
    assert float(aggregate_loss(loss, mask, mode, norm_constant=4)) == pytest.approx(expected)
