"""Closed-form rewards, the CRS combiner and the config builder, on hand-worked numbers."""

from __future__ import annotations

import pytest
import torch

from rlhf.core.errors import ConfigError
from rlhf.rewards.build import build_reward
from rlhf.rewards.crs import CombinedReward
from rlhf.rewards.weighted_sum import WeightedSumReward
from rlhf.rewards.word_count import WordCountReward

PROMPTS = [[{"role": "user", "content": "hi"}]] * 3


class FixedScores:
    """A stand-in RM returning given scores, with optional saved stats."""

    def __init__(self, scores, stats=None):
        self.scores = torch.tensor(scores)
        if stats is not None:
            self.stats = stats

    def score(self, prompts, responses):
        return self.scores


def test_word_count_whole_word_and_substring():
    responses = ["The cat sat on the mat.", "THE end", "there"]
    # whole word, case-insensitive: "The", "the" | "THE" | none ("there" is not the word)
    assert WordCountReward("the").score(PROMPTS, responses).tolist() == [2.0, 1.0, 0.0]
    # case-sensitive whole word: only the lowercase "the"
    assert WordCountReward("the", case_sensitive=True).score(PROMPTS, responses).tolist() == [1.0, 0.0, 0.0]
    # substring "e": "The" "the" -> 2 | "THE" "end" -> 2 | "there" -> 2
    assert WordCountReward("e", whole_word=False).score(PROMPTS, responses).tolist() == [2.0, 2.0, 2.0]
    assert WordCountReward("e").score(PROMPTS, responses).dtype == torch.float32


def test_crs_raw_mixing():
    crs = CombinedReward(FixedScores([2.0, 0.0, -1.0]), FixedScores([1.0, 4.0, 3.0]), w=0.25, normalize="none")
    # 0.25 * pref + 0.75 * abs: 0.5 + 0.75 = 1.25 | 0 + 3 = 3 | -0.25 + 2.25 = 2.0
    assert torch.allclose(crs.score(PROMPTS, ["a", "b", "c"]), torch.tensor([1.25, 3.0, 2.0]))


def test_crs_saved_stats_normalisation():
    pref = FixedScores([3.0, 1.0, 2.0], stats={"mean": 2.0, "std": 0.5})
    absolute = FixedScores([0.0, 1.0, 2.0], stats={"mean": 1.0, "std": 2.0})
    crs = CombinedReward(pref, absolute, w=0.5, normalize=True)
    # pref z = (3-2)/0.5, (1-2)/0.5, 0 = 2, -2, 0; abs z = -0.5, 0, 0.5; mean of the two parts:
    assert torch.allclose(crs.score(PROMPTS, ["a", "b", "c"]), torch.tensor([0.75, -1.0, 0.25]))


def test_crs_running_normalisation_and_state():
    crs = CombinedReward(FixedScores([1.0, 2.0, 3.0]), FixedScores([5.0, 5.0, 5.0]), w=1.0, normalize="running")
    # running stats absorb the batch first: mean 2, population std sqrt(2/3) = 0.8165
    expected = torch.tensor([-1.0, 0.0, 1.0]) / (2.0 / 3.0) ** 0.5
    assert torch.allclose(crs.score(PROMPTS, ["a", "b", "c"]), expected, atol=1e-5)
    state = crs.state_dict()
    assert state["preference"] == {"mean": 2.0, "var": pytest.approx(2.0 / 3.0), "count": 3}
    fresh = CombinedReward(FixedScores([1.0, 2.0, 3.0]), FixedScores([5.0, 5.0, 5.0]), w=1.0, normalize="running")
    fresh.load_state_dict(state)
    assert fresh.running["preference"].count == 3


def test_crs_rejects_bad_weight_and_mode():
    with pytest.raises(ConfigError, match="reward_fn.w"):
        CombinedReward(FixedScores([0.0]), FixedScores([0.0]), w=1.5)
    with pytest.raises(ConfigError, match="reward_fn.normalize"):
        CombinedReward(FixedScores([0.0]), FixedScores([0.0]), w=0.5, normalize="zscore")


def test_build_reward_kinds():
    reward = build_reward({"kind": "word_count", "word": "cat"})
    assert reward.score(PROMPTS[:1], ["cat cat dog"]).tolist() == [2.0]
    summed = build_reward([{"kind": "word_count", "word": "cat", "weight": 2.0},
                           {"kind": "word_count", "word": "dog", "weight": -1.0}])
    assert isinstance(summed, WeightedSumReward)
    # 2 * 2 cats - 1 * 1 dog = 3
    assert summed.score(PROMPTS[:1], ["cat cat dog"]).tolist() == [3.0]
    with pytest.raises(ConfigError, match="reward_fn.kind"):
        build_reward({"kind": "vibes"})
    with pytest.raises(ConfigError, match="reward_fn.path"):
        build_reward({"kind": "reward_model", "path": None})
