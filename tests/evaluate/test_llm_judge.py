import sys
from pathlib import Path

import pytest

from rlhf.core.errors import ConfigError
from rlhf.annotators.llm_judge import DEFAULT_JUDGE_PROMPT, JudgeRequestError, LLMJudge, parse_verdict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from openai_stub import OpenAIStubServer  # noqa: E402

PROMPT = [{"role": "user", "content": "Name a prime number."}]


def fair_judge(body: dict) -> str:
    """Prefers the answer that says 7, wherever it is shown."""
    user = body["messages"][-1]["content"]
    shown_first = user.split("--- Answer A ---\n", 1)[1].split("\n--- End of answer A", 1)[0]
    return "A names a prime. [[A]]" if "7" in shown_first else "B names a prime. [[B]]"


def test_position_swap_consistent_verdict_wins():
    with OpenAIStubServer(fair_judge) as server:
        judge = LLMJudge(server.base_url, "judge-x", backoff_s=0)
        out = judge.judge_one(PROMPT, "7 is prime.", "Nine.")
        assert out["winner"] == "a" and out["verdicts"] == ["a", "a"] and out["orders"] == ["ab", "ba"]
        # second call showed the answers swapped
        first, second = (r["messages"][-1]["content"] for r in server.requests)
        assert first.index("7 is prime.") < first.index("Nine.")
        assert second.index("Nine.") < second.index("7 is prime.")
        assert server.requests[0]["model"] == "judge-x" and server.requests[0]["temperature"] == 0.0
        assert judge.compare(PROMPT, "Nine.", "7 is prime.") == "b"


def test_inconsistent_verdicts_after_swap_become_a_tie():
    with OpenAIStubServer(lambda body: "The first one. [[A]]") as server:  # pure position bias
        out = LLMJudge(server.base_url, "judge-x", backoff_s=0).judge_one(PROMPT, "7", "9")
        # order ab -> a; order ba says A = response b -> b: they disagree -> tie
        assert out["verdicts"] == ["a", "b"] and out["winner"] == "tie"
        assert len(server.requests) == 2


def test_without_swap_one_call_and_unparsed_reply_is_a_tie():
    with OpenAIStubServer(lambda body: "I cannot decide.") as server:
        out = LLMJudge(server.base_url, "judge-x", swap_positions=False, backoff_s=0).judge_one(PROMPT, "7", "9")
        assert out["winner"] == "tie" and out["unparsed_replies"] == ["I cannot decide."]
        assert len(server.requests) == 1


def test_http_error_is_clear_and_not_retried(monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-secret")
    with OpenAIStubServer(lambda body: (401, {"error": {"message": "bad key"}})) as server:
        judge = LLMJudge(server.base_url, "judge-x", api_key_env="TEST_JUDGE_KEY", backoff_s=0)
        with pytest.raises(JudgeRequestError, match="HTTP 401.*bad key.*TEST_JUDGE_KEY"):
            judge.judge_one(PROMPT, "7", "9")
        assert len(server.requests) == 1
        assert server.request_headers[0]["Authorization"] == "Bearer sk-secret"
        assert "sk-secret" not in str(server.requests[0])


def test_retryable_errors_are_retried_then_give_up():
    calls = []

    def flaky(body):
        calls.append(1)
        return (503, "busy") if len(calls) == 1 else "fine [[B]]"

    with OpenAIStubServer(flaky) as server:
        judge = LLMJudge(server.base_url, "judge-x", swap_positions=False, backoff_s=0, max_retries=2)
        assert judge.judge_one(PROMPT, "7", "9")["winner"] == "b"  # 1 failure + 1 success
    with OpenAIStubServer(lambda body: (503, "busy")) as server:
        judge = LLMJudge(server.base_url, "judge-x", swap_positions=False, backoff_s=0, max_retries=2)
        with pytest.raises(JudgeRequestError, match="HTTP 503 after 3 attempt"):
            judge.judge_one(PROMPT, "7", "9")


def test_unreachable_endpoint_and_bad_reply():
    with OpenAIStubServer(lambda body: "x") as server:
        url = server.base_url
    with pytest.raises(JudgeRequestError, match="unreachable"):
        LLMJudge(url, "judge-x", backoff_s=0, max_retries=0).judge_one(PROMPT, "7", "9")
    with OpenAIStubServer(lambda body: {"choices": []}) as server:
        with pytest.raises(JudgeRequestError, match="choices"):
            LLMJudge(server.base_url, "judge-x", backoff_s=0).judge_one(PROMPT, "7", "9")


def test_parse_verdict_takes_the_last_marker_and_custom_templates():
    assert parse_verdict("Not [[A]] but rather [[C]]", DEFAULT_JUDGE_PROMPT) == "tie"
    assert parse_verdict("no marker", DEFAULT_JUDGE_PROMPT) is None
    custom = LLMJudge("http://x/v1", "m", prompt_template="Q {question} A {answer_a} B {answer_b}")
    assert custom.prompt.name == "custom" and custom.name == "llm:m:custom"
    with pytest.raises(ConfigError, match="answer_b"):
        LLMJudge("http://x/v1", "m", prompt_template="only {answer_a}")


def test_fastchat_pair_prompt_loads(shared_data_dir):
    from rlhf.annotators.llm_judge import load_fastchat_judge_prompt

    prompt = load_fastchat_judge_prompt("pair-v2", shared_data_dir / "eval" / "llm_judge_prompts.jsonl.gz")
    assert {"question", "answer_a", "answer_b"} <= prompt.fields()
    assert parse_verdict("... [[B]]", prompt) == "b"


def test_random_order_maps_verdicts_back_to_the_caller():
    with OpenAIStubServer(fair_judge) as server:
        judge = LLMJudge(server.base_url, "judge-x", swap_positions=False, random_order=True, seed=0, backoff_s=0)
        outs = [judge.judge_one(PROMPT, "7 is prime.", "Nine.") for _ in range(12)]
    # the fair judge always picks the '7' answer, whichever side it was shown on -> always 'a'
    assert all(o["winner"] == "a" for o in outs)
    assert {o["orders"][0] for o in outs} == {"ab", "ba"}  # seeded coin flips showed both orders
    with pytest.raises(ConfigError, match="either"):
        LLMJudge("http://x/v1", "m", swap_positions=True, random_order=True)
