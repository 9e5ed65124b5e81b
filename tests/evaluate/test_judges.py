import json

import pytest
import torch

from rlhf.core.errors import ConfigError, DataError
from rlhf.evaluate.judges import RewardModelJudge, SimulatedJudge, build_judge, preference_from_scores
from rlhf.evaluate.judgments import judge_files, judge_generations, load_judgments, pair_generations


class LengthScorer:
    """Reward protocol stand-in: score = number of words, as a float32 tensor."""

    def score(self, prompts, responses):
        assert all(isinstance(p, list) and p[-1]["role"] == "user" for p in prompts)
        return torch.tensor([float(len(r.split())) for r in responses])


class FakeAnnotator:
    def __init__(self):
        self.calls = []

    def gold_scores(self, prompt_texts, responses):
        self.calls.append((list(prompt_texts), list(responses)))
        return [1.0 if "please" in r else 0.0 for r in responses]


def rows(model, responses, dataset="koala"):
    return [{"id": str(i), "dataset": dataset, "prompt": [{"role": "user", "content": f"q{i}"}],
             "response": r, "model": model} for i, r in enumerate(responses)]


def test_preference_from_scores_margin():
    assert preference_from_scores(1.0, 0.5) == "a"
    assert preference_from_scores(0.5, 1.0) == "b"
    assert preference_from_scores(1.0, 0.8, tie_margin=0.25) == "tie"  # |0.2| <= 0.25


def test_reward_model_judge_reads_tensor_scores():
    judge = RewardModelJudge(LengthScorer())
    out = judge.judge_batch([[{"role": "user", "content": "q"}]] * 3, ["one two", "x", "a b"], ["x", "one two", "c d"])
    # words: 2 vs 1 -> a; 1 vs 2 -> b; 2 vs 2 -> tie
    assert [o["winner"] for o in out] == ["a", "b", "tie"]
    assert out[0]["score_a"] == 2.0 and isinstance(out[0]["score_a"], float)


def test_simulated_judge_uses_last_user_turn_in_one_batch():
    annotator = FakeAnnotator()
    prompt = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"},
              {"role": "user", "content": "help me"}]
    out = SimulatedJudge(annotator).judge_batch([prompt], ["sure, please wait"], ["no"])
    assert out[0]["winner"] == "a"
    assert annotator.calls == [(["help me", "help me"], ["sure, please wait", "no"])]


def test_judge_generations_writes_rows_with_names_and_lengths(tmp_path):
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in rows("sft", ["one two three", "x"])))
    b.write_text("".join(json.dumps(r) + "\n" for r in reversed(rows("ppo", ["one", "x y"]))))
    out = judge_files(a, b, RewardModelJudge(LengthScorer()), tmp_path / "j.jsonl")
    judged = load_judgments(out)
    # id 0: 3 words vs 1 -> a; id 1: 1 word vs 2 -> b  (B's file order does not matter)
    assert [(j["id"], j["winner"]) for j in judged] == [("0", "a"), ("1", "b")]
    assert judged[0]["model_a"] == "sft" and judged[0]["model_b"] == "ppo" and judged[0]["judge"] == "reward_model"
    assert (judged[0]["length_a"], judged[0]["length_b"]) == (len("one two three"), len("one"))


def test_pairing_errors_name_the_problem():
    with pytest.raises(DataError, match="different prompts"):
        pair_generations(rows("x", ["a", "b"]), rows("y", ["a"]))
    with pytest.raises(DataError, match="duplicate"):
        pair_generations(rows("x", ["a"]) * 2, rows("y", ["a"]))
    with pytest.raises(ConfigError, match="distinct"):
        judge_generations(rows("x", ["a"]), rows("x", ["b"]), RewardModelJudge(LengthScorer()))


def test_build_judge_errors():
    with pytest.raises(ConfigError, match="base_url"):
        build_judge("llm")
    with pytest.raises(ConfigError, match="RM folder"):
        build_judge("reward_model")
    with pytest.raises(ConfigError, match="allowed"):
        build_judge("oracle")


def test_build_judge_simulated_wraps_the_annotator():
    judge = build_judge("simulated", tie_margin=0.1)
    assert isinstance(judge, SimulatedJudge) and judge.name == "simulated" and judge.tie_margin == 0.1


def test_judging_files_holds_only_the_rows_that_come_out_of_order(tmp_path):
    # B answers A's prompts with ids 0 and 1 swapped: B's row for id 1 waits for A's row 1 (one row
    # held), the others pair as they are read; files in the same order hold none.
    from rlhf.evaluate.judgments import GenerationPairs, iter_generations

    a, b, same = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "same.jsonl"
    rows_b = rows("ppo", ["w", "x y", "z z z", "q"])
    a.write_text("".join(json.dumps(r) + "\n" for r in rows("sft", ["one", "one two", "a", "b c d e"])))
    b.write_text("".join(json.dumps(r) + "\n" for r in [rows_b[1], rows_b[0], rows_b[2], rows_b[3]]))
    same.write_text("".join(json.dumps(r) + "\n" for r in rows_b))
    for other, held in ((b, 1), (same, 0)):
        pairs = GenerationPairs(lambda: iter_generations(a), lambda: iter_generations(other))
        assert [(x["id"], y["id"]) for x, y in pairs] == [("0", "0"), ("1", "1"), ("2", "2"), ("3", "3")]
        assert pairs.most_waiting == held
    out = judge_files(a, b, RewardModelJudge(LengthScorer()), tmp_path / "j.jsonl", batch_size=3)
    # words a vs b: 1 vs 1 tie, 2 vs 2 tie, 1 vs 3 b, 4 vs 1 a
    assert [j["winner"] for j in load_judgments(out)] == ["tie", "tie", "b", "a"]


def test_a_prompt_missing_from_one_file_is_named_before_any_judging(tmp_path):
    class NoJudge:
        name = "none"

        def judge_batch(self, *args):
            raise AssertionError("nothing may be judged when the files do not match")

    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in rows("sft", ["x", "y", "z"])))
    b.write_text("".join(json.dumps(r) + "\n" for r in rows("ppo", ["x", "y"])))
    with pytest.raises(DataError, match=r"1 only in A \(e.g. \[\('koala', '2'\)\]\), 0 only in B"):
        judge_files(a, b, NoJudge(), tmp_path / "j.jsonl")
    assert not (tmp_path / "j.jsonl").exists()
