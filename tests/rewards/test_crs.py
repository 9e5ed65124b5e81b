"""Hand-worked checks of the Combined Reward Score mixing (rlhf/rewards/crs.py; docs/methods.md §3.9, §4.3)."""

from __future__ import annotations

import math

import pytest
import torch

from rlhf.core.errors import ConfigError
from rlhf.rewards.crs import combined_reward_score, logit_from_probability


def test_combined_reward_score_by_hand_and_validates_weight():
    pref = torch.tensor([2.0, -1.0])
    abs_ = torch.tensor([0.4, 0.8])
    # w = 0.25: 0.25*2 + 0.75*0.4 = 0.8 ; 0.25*(-1) + 0.75*0.8 = 0.35
    assert combined_reward_score(pref, abs_, 0.25).tolist() == pytest.approx([0.8, 0.35])
    assert combined_reward_score(pref, abs_, 1.0).tolist() == pytest.approx([2.0, -1.0])
    assert combined_reward_score(pref, abs_, 0.0).tolist() == pytest.approx([0.4, 0.8])
    with pytest.raises(ConfigError, match="reward_fn.w"):
        combined_reward_score(pref, abs_, 1.5)

def test_logit_from_probability_thesis_worked_example():
    # docs/methods.md §3.9 / thesis Table 27: z = ln(p / (1 - p)),
    # e.g. ln(0.6914 / 0.3086) = ln 2.24044 = 0.8067
    p = torch.tensor([0.6914, 0.4258, 0.3496, 0.3398])
    expected = [0.8067, -0.2990, -0.6208, -0.6642]
    assert logit_from_probability(p).tolist() == pytest.approx(expected, abs=1e-3)

def test_logit_from_probability_edges():
    # p = 0 and 1 are clamped to eps = 1e-6: ln(1e-6 / (1 - 1e-6)) = -13.815512
    z = logit_from_probability(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    assert z.tolist() == pytest.approx([-13.815512, 0.0, 13.815512], abs=1e-3)
    with pytest.raises(ValueError, match="must lie in \\[0, 1\\]"):
        logit_from_probability(torch.tensor([0.5, 1.7]))
