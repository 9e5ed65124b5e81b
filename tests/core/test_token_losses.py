"""Hand-worked checks of the token-level helpers in rlhf/core/token_losses.py (masked mean, LM loss, log-probs, entropy)."""

from __future__ import annotations

import math

import pytest
import torch

from rlhf.core.token_losses import entropy_from_logits, logprobs_from_logits, masked_lm_loss, masked_mean

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


# ---------------------------------------------------------------- log-probs, entropy


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
