import pytest

from rlhf.core.errors import ConfigError
from rlhf.rewards.length import LengthPenalty

PROMPTS = [[{"role": "user", "content": "How much does Adam earn?"}]]


def score(reward, responses):
    return reward(PROMPTS * len(responses), responses, [{}] * len(responses))


def test_chars_linear_beyond_target():
    reward = LengthPenalty(target_chars=10, coef=0.5)
    scores, details = score(reward, ["", "1080", "x" * 10, "x" * 11, "x" * 14])
    assert scores == [0.0, 0.0, 0.0, -0.5, -2.0]
    assert details == {"length": [0, 4, 10, 11, 14], "excess": [0, 0, 0, 1, 4]}
    assert score(LengthPenalty(target_chars=3, coef=1.0), ["\u00e9t\u00e9!"])[0] == [-1.0]  # str length, not bytes


def test_cap():
    reward = LengthPenalty(target_chars=0, coef=0.1, max_penalty=0.25)
    assert score(reward, ["ab", "abcdefghij"])[0] == pytest.approx([-0.2, -0.25])


def test_tokens_with_a_callable_and_an_encoder():
    words = LengthPenalty(target_tokens=3, coef=1.0, tokenizer=str.split)
    assert score(words, ["the answer is 1080", "1080"])[0] == [-1.0, 0.0]

    class Encoder:  # Hugging Face style: special tokens must not be counted
        def encode(self, text, add_special_tokens=True):
            return ([0] if add_special_tokens else []) + [ord(c) for c in text]

    reward = LengthPenalty(target_tokens=2, coef=0.25, tokenizer=Encoder())
    scores, details = score(reward, ["abcd"])
    assert scores == [-0.5] and details["length"] == [4]

    class PlainEncoder:  # no add_special_tokens keyword
        def encode(self, text):
            return text.split()

    assert score(LengthPenalty(target_tokens=1, coef=1.0, tokenizer=PlainEncoder()), ["a b c"])[0] == [-2.0]


@pytest.mark.parametrize("kwargs, key", [
    ({}, "target_chars"),
    ({"target_chars": 5, "target_tokens": 5, "tokenizer": str.split}, "target_chars"),
    ({"target_chars": -1}, "target_chars"),
    ({"target_tokens": 5}, "tokenizer"),
    ({"target_chars": 5, "coef": -0.1}, "coef"),
    ({"target_chars": 5, "max_penalty": -1}, "max_penalty"),
])
def test_bad_settings(kwargs, key):
    with pytest.raises(ConfigError, match=f"reward.{key}"):
        LengthPenalty(**kwargs)
