from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from rlhf.annotators.llm_judge import LLMJudgeAnnotator, round_robin_wins
from rlhf.core.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from openai_stub import OpenAIStubServer  # noqa: E402

PROMPT = [{"role": "user", "content": "Name a fruit."}]
# Quality the stub judge believes in: higher wins.
QUALITY = {"Apple.": 3, "Banana.": 2, "Rock.": 1, "Car.": 0}


def shown_answers(body: dict) -> tuple[str, str]:
    text = body["messages"][-1]["content"]
    a = re.search(r"--- Answer A ---\n(.*?)\n--- End of answer A ---", text, re.S).group(1)
    b = re.search(r"--- Answer B ---\n(.*?)\n--- End of answer B ---", text, re.S).group(1)
    return a, b


def fair_judge(body: dict) -> str:
    a, b = shown_answers(body)
    return "A is better. [[A]]" if QUALITY[a] > QUALITY[b] else "B is better. [[B]]"


def test_round_robin_wins_by_hand():
    # 3 responses: 0 beats 1, 2 beats 0, 1 ties 2 -> wins [1, 0.5, 1.5]
    assert round_robin_wins(3, {(0, 1): "a", (0, 2): "b", (1, 2): "tie"}) == [1.0, 0.5, 1.5]
    with pytest.raises(ValueError, match="expected 'a', 'b' or 'tie'"):
        round_robin_wins(2, {(0, 1): "A"})


def test_ranks_through_stub_endpoint_with_position_swap(monkeypatch):
    monkeypatch.setenv("JUDGE_TEST_KEY", "sk-test-123")
    with OpenAIStubServer(fair_judge) as server:
        annotator = LLMJudgeAnnotator(base_url=server.base_url, model="stub-model", api_key_env="JUDGE_TEST_KEY",
                                      max_retries=0)
        ranks = annotator.rank(PROMPT, ["Rock.", "Apple.", "Car.", "Banana."])
        # Wins: Apple 3, Banana 2, Rock 1, Car 0 -> ranks by position [2, 0, 3, 1]
        assert ranks == [2, 0, 3, 1]
        # C(4, 2) = 6 pairs, each judged in both orders.
        assert len(server.requests) == 12
        first, second = shown_answers(server.requests[0]), shown_answers(server.requests[1])
        assert first == ("Rock.", "Apple.") and second == ("Apple.", "Rock.")
        assert server.requests[0]["model"] == "stub-model"
        assert "Name a fruit." in server.requests[0]["messages"][-1]["content"]
        assert server.request_headers[0].get("Authorization") == "Bearer sk-test-123"
    # The key lives only in the environment, never on the annotator or its judge.
    assert "sk-test-123" not in json.dumps(vars(annotator), default=repr)
    assert "sk-test-123" not in json.dumps(vars(annotator.judge), default=repr)


def test_position_biased_judge_yields_ties():
    # A judge that always prefers whatever is shown first disagrees with itself on the swap -> tie.
    with OpenAIStubServer(lambda body: "[[A]]") as server:
        annotator = LLMJudgeAnnotator(base_url=server.base_url, model="m", max_retries=0)
        assert annotator.rank(PROMPT, ["Apple.", "Car.", "Rock."]) == [0, 0, 0]


def test_no_swap_sends_one_request_per_pair():
    with OpenAIStubServer(lambda body: "[[A]]") as server:
        annotator = LLMJudgeAnnotator(base_url=server.base_url, model="m", swap_positions=False, max_retries=0)
        # Always "first shown wins": 0 beats 1 and 2, 1 beats 2 -> wins [2, 1, 0]
        assert annotator.rank(PROMPT, ["x", "y", "z"]) == [0, 1, 2]
        assert len(server.requests) == 3


def test_custom_prompt_template_is_used():
    template = "Q: {question}\nFirst: {answer_a}\nSecond: {answer_b}\nReply [[A]], [[B]] or [[C]]."
    with OpenAIStubServer(lambda body: "[[C]]") as server:
        annotator = LLMJudgeAnnotator(base_url=server.base_url, model="m", prompt_template=template, max_retries=0)
        assert annotator.rank(PROMPT, ["x", "y"]) == [0, 0]
        assert server.requests[0]["messages"][-1]["content"] == "Q: Name a fruit.\nFirst: x\nSecond: y\nReply [[A]], [[B]] or [[C]]."


def test_missing_endpoint_config():
    with pytest.raises(ConfigError, match="annotator.base_url"):
        LLMJudgeAnnotator(model="m")
    with pytest.raises(ConfigError, match="annotator.model"):
        LLMJudgeAnnotator(base_url="http://127.0.0.1:9/v1")


def test_labels_not_available():
    with pytest.raises(NotImplementedError):
        LLMJudgeAnnotator(judge=object()).labels(PROMPT, "x")
