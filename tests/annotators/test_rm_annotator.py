from __future__ import annotations

import math

import pytest
import torch

from rlhf.annotators.rm_annotator import RewardModelAnnotator, sigmoid
from rlhf.core.errors import ConfigError, DataError

PROMPT = [{"role": "user", "content": "Say something nice."}]


class LengthScorer:
    """Fake RM: score = number of characters / 10, returned as a tensor like RewardScorer."""

    output = "logit"

    def __init__(self):
        self.calls = []

    def score(self, prompts, responses):
        self.calls.append((list(prompts), list(responses)))
        return torch.tensor([len(r) / 10 for r in responses])


def test_ranks_by_score_in_one_call():
    scorer = LengthScorer()
    annotator = RewardModelAnnotator(scorer)
    # lengths 2, 10, 5 -> scores 0.2, 1.0, 0.5 -> ranks [2, 0, 1]
    assert annotator.rank(PROMPT, ["hi", "hello dear", "hello"]) == [2, 0, 1]
    assert scorer.calls == [([PROMPT] * 3, ["hi", "hello dear", "hello"])]


def test_equal_scores_tie():
    annotator = RewardModelAnnotator(lambda prompts, responses: [1.0, 3.0, 1.0])
    assert annotator.rank(PROMPT, ["a", "b", "c"]) == [1, 0, 1]


def test_logit_labels_are_squashed_to_quality():
    annotator = RewardModelAnnotator(LengthScorer())
    # score 2.0 for a 20-character reply: σ(2) = 1 / (1 + e^-2) = 0.880797
    assert annotator.labels(PROMPT, "x" * 20) == {"quality": pytest.approx(1 / (1 + math.exp(-2.0)))}
    assert sigmoid(0.0) == 0.5
    assert sigmoid(-1000.0) == 0.0 and sigmoid(1000.0) == 1.0


def test_prob_labels_pass_through_and_are_checked():
    annotator = RewardModelAnnotator(lambda p, r: [0.25] * len(r), output_mode="prob")
    assert annotator.labels(PROMPT, "x") == {"quality": 0.25}
    bad = RewardModelAnnotator(lambda p, r: [1.5], output_mode="prob")
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        bad.labels(PROMPT, "x")


def test_output_mode_follows_the_scorer():
    class ProbScorer(LengthScorer):
        output = "prob"

    assert RewardModelAnnotator(ProbScorer()).output_mode == "prob"
    assert RewardModelAnnotator(lambda p, r: [0.0]).output_mode == "logit"


def test_bad_inputs():
    with pytest.raises(ConfigError, match="annotator.score"):
        RewardModelAnnotator(42)
    with pytest.raises(ConfigError, match="annotator.output_mode"):
        RewardModelAnnotator(LengthScorer(), output_mode="raw")
    with pytest.raises(ValueError, match="returned 1 scores for 2 responses"):
        RewardModelAnnotator(lambda p, r: [0.0]).rank(PROMPT, ["a", "b"])
    with pytest.raises(DataError, match="end with a user turn"):
        RewardModelAnnotator(LengthScorer()).rank([{"role": "assistant", "content": "x"}], ["a"])
