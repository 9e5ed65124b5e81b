"""The math_answer reward as PPO calls it (configs/reward_fn/math_answer.yaml through build_reward) on
real answer strings: GSM8K `####` answers, commas and units, LaTeX fractions, boxed answers; the
grading is math-verify's, and unparseable answers score 0 and are counted."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlhf.rewards.build import build_reward

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "reward_fn" / "math_answer.yaml"
PROMPT = [{"role": "user", "content": "q"}]
# gsm8k test line 1 (Janet's ducks) and train line 346 (Adam's pay), as in test_verifiable.py
JANET = ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
         "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer\u2019s market.\n#### 18")
ADAM_TAIL = "This means that in 30 days he earns $36 * 30 = $<<36*30=1080>>1080.\n#### 1,080"


@pytest.fixture(scope="module")
def reward():
    return build_reward(OmegaConf.to_container(OmegaConf.load(CONFIG)))


def grade(reward, responses, answers):
    metadata = [{"id": f"p{i}", "answer": a} for i, a in enumerate(answers)]
    return reward([PROMPT] * len(responses), responses, metadata)


CASES = [
    # (response, reference, correct)
    ("She makes 9 * 2 = 18 dollars.\n#### 18", JANET, True),
    ("She makes $18 every day.", JANET, True),
    ("18 dollars", JANET, True),
    ("She makes $20 every day.", JANET, False),
    ("So he earns 1080 in total.\n#### 1,080", ADAM_TAIL, True),       # a model copying GSM8K's format
    ("#### 1,080", "1080", True),
    ("He earns $1,080.", 1080, True),
    ("The answer is \\boxed{\\frac{1}{2}}.", "0.5", True),
    ("The answer is 0.5", "\\frac{1}{2}", True),
    ("$\\frac{2}{4}$", "\\frac{1}{2}", True),
    ("\\boxed{\\frac{1}{3}}", "0.5", False),
    ("So the answer is $\\boxed{42}$.", "42", True),
]


@pytest.mark.parametrize("response, reference, correct", CASES)
def test_real_answer_strings(reward, response, reference, correct):
    result = grade(reward, [response], [reference])
    assert result.scores.tolist() == [1.0 if correct else 0.0], result.details


def test_unparseable_answers_score_zero_and_are_counted(reward):
    result = grade(reward, ["I am not sure.", "#### 18", "", "\\frac{"], [JANET] * 4)
    assert result.scores.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert result.details["math_answer"]["parsed"] == [False, True, False, False]
    stats = result.stats["math_answer"]
    assert stats["parsed_rate"] == 0.25 and stats["hit_rate"] == 0.25 and stats["invalid"] == 0


def test_equivalence_is_decided_by_math_verify(reward, monkeypatch):
    import math_verify

    calls = []
    real = math_verify.verify
    monkeypatch.setattr(math_verify, "verify", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert grade(reward, ["\\frac{1}{2}"], ["0.5"]).scores.tolist() == [1.0]
    assert len(calls) == 1
