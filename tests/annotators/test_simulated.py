from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf.annotators.simulated import (
    CRITERIA,
    ICE_GRT_DERIVED_WEIGHTS,
    SimulatedAnnotator,
    plackett_luce_ranks,
    weighted_gold_score,
)
from rlhf.core.errors import ConfigError


class TopicEncoder:
    """Stand-in for the sentence encoder: a text's vector counts the words 'water' and 'cat', so
    texts about the same one of them have cosine ~1 and texts about different ones cosine ~0."""

    def __init__(self):
        self.calls = []

    def encode(self, texts):
        self.calls.append(list(texts))
        rows = [[t.lower().count("water"), t.lower().count("cat"), 1e-3] for t in texts]
        return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


PROMPT = [{"role": "user", "content": "How much water should I drink each day?"}]
GOOD = "Happy to help. Drink water with every meal, and keep a bottle nearby. Hope this helps!"
PLAIN = "Drink water with every meal, and keep a bottle nearby."
OFF_TOPIC = "My cat likes to sleep on the"


def annotator(**kwargs) -> SimulatedAnnotator:
    return SimulatedAnnotator(encoder=TopicEncoder(), **kwargs)


def test_ice_grt_weights_folded_onto_six_criteria():
    # Context 1 + Accuracy 6 -> relevance 7; Courtesy 3 + Comfortableness 3 -> 6; the rest one to one.
    assert ICE_GRT_DERIVED_WEIGHTS == {"relevance": 7.0, "completeness": 6.0, "no_repetition": 6.0,
                                       "courtesy": 6.0, "safety": 3.0, "conciseness": 1.0}
    assert sum(ICE_GRT_DERIVED_WEIGHTS.values()) == 29  # the ICE-GRT total


def test_criteria_of_a_good_reply_by_hand():
    values = annotator().criteria(PROMPT[0]["content"], GOOD)
    # 16 words, all distinct; "happy to help" + "hope this helps"; ends with "!".
    # asked stems {water, drink, day}; reply stems {happy, help, drink, water, meal, keep, bottl, nearb, hop}
    # completeness = 0.4 * 2/3 + 0.3 * 1 + 0.3 * 7/10
    expected = {"relevance": 1.0, "completeness": 0.4 * 2 / 3 + 0.3 + 0.21, "no_repetition": 1.0,
                "courtesy": 1.0, "safety": 1.0, "conciseness": 16 / 20}
    assert values == pytest.approx(expected)
    # gold = (7*1 + 6*0.776667 + 6*1 + 6*1 + 3*1 + 1*0.8) / 29 = 27.46 / 29
    assert annotator().gold_score(PROMPT[0]["content"], GOOD) == pytest.approx(27.46 / 29)


def test_custom_weights_pick_criteria():
    ann = annotator(weights={"courtesy": 1.0, "conciseness": 1.0})
    # courtesy 1.0, conciseness 16/20 = 0.8 -> (1.0 + 0.8) / 2
    assert ann.gold_score(PROMPT[0]["content"], GOOD) == pytest.approx(0.9)
    # PLAIN: no polite marker (0.4), 10 words (10/20 = 0.5) -> (0.4 + 0.5) / 2
    assert ann.gold_score(PROMPT[0]["content"], PLAIN) == pytest.approx(0.45)


def test_off_topic_and_empty_replies():
    ann = annotator()
    off = ann.criteria(PROMPT[0]["content"], OFF_TOPIC)
    assert off["relevance"] == 0.0           # cosine ~0 -> below the band
    # asked {water, drink, day}, said {cat, lik, sleep}: 0.4*0 + 0.3*0 (no end) + 0.3 * 3/10
    assert off["completeness"] == pytest.approx(0.09)
    assert ann.criteria(PROMPT[0]["content"], "   ") == dict.fromkeys(CRITERIA, 0.0)


def test_weighted_gold_score_formula():
    # (2 * 1.0 + 1 * 0.4) / 3
    assert weighted_gold_score({"a": 1.0, "b": 0.4}, {"a": 2.0, "b": 1.0}) == pytest.approx(0.8)


def test_score_is_a_float_tensor_per_response_and_encodes_once():
    ann = annotator()
    prompts = [PROMPT, PROMPT, [{"role": "user", "content": "Tell me about cats."}]]
    responses = [GOOD, PLAIN, OFF_TOPIC]
    scores = ann.score(prompts, responses)
    assert scores.shape == (3,) and scores.dtype == torch.float32
    assert scores[0] == pytest.approx(27.46 / 29)
    assert scores[0] > scores[1]
    # One encode() call, each distinct text once: 2 prompts + 2 reply heads (GOOD with its courtesy
    # phrases cut out is PLAIN, so the two share one embedding).
    assert len(ann.encoder.calls) == 1 and len(ann.encoder.calls[0]) == 4
    with pytest.raises(ValueError, match="one prompt per response"):
        ann.score([PROMPT], [GOOD, PLAIN])


def test_relevance_reads_only_the_head_of_a_long_reply():
    ann = annotator(relevance_words=3)
    # The first 3 words mention the cat, so the water later on does not count.
    assert ann.relevances(["water?"], ["cat cat cat water water water"]) == [0.0]


def test_labels_are_criteria_plus_quality_in_unit_interval():
    labels = annotator().labels(PROMPT, GOOD)
    assert set(labels) == set(CRITERIA) | {"quality"}
    assert all(0.0 <= v <= 1.0 for v in labels.values())
    assert labels["quality"] == pytest.approx(27.46 / 29)


def test_temperature_zero_ranks_in_gold_order():
    ann = annotator(temperature=0.0)
    responses = [OFF_TOPIC, GOOD, PLAIN, ""]
    # gold: GOOD > PLAIN > OFF_TOPIC > "" (empty scores 0)
    assert ann.rank(PROMPT, responses) == [2, 0, 1, 3]
    for _ in range(5):
        assert ann.rank(PROMPT, responses) == [2, 0, 1, 3]


def test_temperature_zero_breaks_ties_by_position():
    assert plackett_luce_ranks([0.5, 0.5, 0.9], 0.0, np.random.default_rng(0)) == [1, 2, 0]


def test_bradley_terry_pair_frequency():
    # P(first above second) = sigma((1.0 - 0.0) / 1.0) = 1 / (1 + e^-1) = 0.7311
    rng = np.random.default_rng(1)
    draws = 4000
    first_wins = sum(plackett_luce_ranks([1.0, 0.0], 1.0, rng)[0] == 0 for _ in range(draws))
    # binomial sd = sqrt(0.7311 * 0.2689 / 4000) = 0.0070; allow 4 sd
    assert abs(first_wins / draws - 0.7311) < 0.028


def test_high_temperature_is_near_uniform():
    # At T = 1e6 the gold gap (at most 1) is invisible: each of 4 responses is first with p = 1/4.
    ann = annotator(temperature=1e6, seed=3)
    responses = [OFF_TOPIC, GOOD, PLAIN, ""]
    draws = 600
    firsts = [0] * 4
    for _ in range(draws):
        firsts[ann.rank(PROMPT, responses).index(0)] += 1
    # expected 150 each, binomial sd = sqrt(600 * 0.25 * 0.75) = 10.6; allow 4 sd
    assert all(abs(count - 150) < 42 for count in firsts), firsts


def test_same_seed_same_noisy_rankings():
    responses = [OFF_TOPIC, GOOD, PLAIN, ""]
    a, b = annotator(temperature=0.5, seed=11), annotator(temperature=0.5, seed=11)
    assert [a.rank(PROMPT, responses) for _ in range(10)] == [b.rank(PROMPT, responses) for _ in range(10)]
    ranks = a.rank(PROMPT, responses)
    assert sorted(ranks) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "kwargs, key",
    [({"temperature": -1.0}, "temperature"), ({"weights": {"wit": 1.0}}, "weights"),
     ({"weights": {"courtesy": 0.0}}, "weights"), ({"target_words": (50, 10)}, "target_words"),
     ({"relevance_band": (0.8, 0.1)}, "relevance_band"), ({"relevance_words": 0}, "relevance_words")],
)
def test_bad_config_names_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=f"annotator.{key}"):
        annotator(**kwargs)


def test_prompt_must_end_with_user_turn():
    from rlhf.core.errors import DataError

    with pytest.raises(DataError, match="end with a user turn"):
        annotator().rank([{"role": "assistant", "content": "hi"}], [GOOD])


@pytest.mark.slow
def test_real_encoder_prefers_on_topic_replies():
    ann = SimulatedAnnotator()
    on, off = ann.relevances([PROMPT[0]["content"]] * 2, [PLAIN, "The stock market closed higher on Friday."])
    # Measured: cosine ~0.42 on topic (relevance ~0.46), near 0 off topic.
    assert on > 0.3 and off < 0.1
