import re

import pytest

from rlhf.core.errors import ConfigError
from rlhf.rewards.format import FormatReward

PROMPTS = [[{"role": "user", "content": "Janet's ducks lay 16 eggs per day..."}]]

GOOD = "<think>16 - 3 - 4 = 9 eggs, 9 * 2 = 18</think>\n<answer>18</answer>\n"
SWAPPED = "<answer>18</answer><think>16 - 3 - 4 = 9</think>"
UNCLOSED = "<think>16 - 3 - 4 = 9</think><answer>18"
PLAIN = "She makes $18 every day."


def score(reward, responses):
    return reward(PROMPTS * len(responses), responses, [{}] * len(responses))


def test_tags_in_order():
    reward = FormatReward(tags=["think", "answer"])
    scores, details = score(reward, [GOOD, SWAPPED, UNCLOSED, PLAIN, "<think>a\nb</think> then <answer>\n18\n</answer>"])
    assert scores == [1.0, 0.0, 0.0, 0.0, 1.0]
    assert details == {"hit": [True, False, False, False, True]}
    assert score(FormatReward(tags="answer"), [SWAPPED, PLAIN])[0] == [1.0, 0.0]


def test_pattern_search_vs_fullmatch():
    boxed = r"\\boxed\{[^{}]+\}"
    text = "So the answer is \\boxed{18}."
    assert score(FormatReward(pattern=boxed), [text, PLAIN])[0] == [1.0, 0.0]
    assert score(FormatReward(pattern=boxed, mode="fullmatch"), [text, "\\boxed{18}\n"])[0] == [0.0, 1.0]
    # DOTALL by default: '.' spans lines, so a whole multi-line answer can be matched
    whole = r"<think>.*</think>\s*<answer>.*</answer>"
    assert score(FormatReward(pattern=whole, mode="fullmatch"), [GOOD, "Sure! " + GOOD])[0] == [1.0, 0.0]
    assert score(FormatReward(pattern=whole, mode="fullmatch", flags=0), [GOOD.replace("\n<answer>", "<answer>")])[0] == [1.0]
    assert score(FormatReward(pattern=r"^\d+$", mode="fullmatch", strip=False), ["18\n"])[0] == [0.0]


def test_pattern_and_tags_together():
    reward = FormatReward(pattern=r"<answer>\s*-?\d+\s*</answer>", tags=["think", "answer"])
    assert score(reward, [GOOD, GOOD.replace("18</answer>", "eighteen</answer>"), SWAPPED])[0] == [1.0, 0.0, 0.0]


def test_metadata_is_optional():
    assert FormatReward(tags=["answer"])(PROMPTS, [GOOD])[0] == [1.0]


@pytest.mark.parametrize("kwargs, key", [
    ({}, "pattern"),
    ({"pattern": "("}, "pattern"),
    ({"pattern": "x", "mode": "match"}, "mode"),
    ({"tags": ["<answer>"]}, "tags"),
])
def test_bad_settings(kwargs, key):
    with pytest.raises(ConfigError, match=re.escape(f"reward.{key}")):
        FormatReward(**kwargs)
