"""The arithmetic task: deterministic from a seed, train and held-out splits disjoint by
construction, answers correct, and graded right by the math_answer reward."""

from __future__ import annotations

import json
import operator
import re

import pytest

from rlhf.core.errors import ConfigError
from rlhf.data import arithmetic_task
from rlhf.data.arithmetic_task import LEVELS, TEMPLATES, arithmetic_prompts, arithmetic_sft_records, split_of
from rlhf.data.source_spec import load_source, metadata_provided
from rlhf.rewards.verifiable import MathAnswerReward

OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def operands(record_id: str) -> tuple[int, str, tuple[int, ...]]:
    """(level, template key, operands) from an id like arith-L2-boxes-3-4-32."""
    _, level, key, *numbers = record_id.split("-")
    return int(level[1:]), key, tuple(int(n) for n in numbers)


def test_same_seed_same_records_other_seed_other_records():
    assert arithmetic_prompts("train", 60, seed=3) == arithmetic_prompts("train", 60, seed=3)
    assert arithmetic_sft_records(20, seed=3) == arithmetic_sft_records(20, seed=3)
    assert [r["id"] for r in arithmetic_prompts("train", 60, seed=3)] != [r["id"] for r in arithmetic_prompts("train", 60, seed=4)]


def test_held_out_operands_never_occur_in_train_under_any_seed_or_wording():
    test_keys = {operands(r["id"])[::2] for r in arithmetic_prompts("test", 300, seed=0)}
    for seed in range(3):
        train = arithmetic_prompts("train", 600, seed=seed)
        assert not test_keys & {operands(r["id"])[::2] for r in train}     # (level, operands) pairs
    sft_texts = {r["messages"][0]["content"] for r in arithmetic_sft_records(600, seed=0)}
    assert not sft_texts & {r["prompt"][0]["content"] for r in arithmetic_prompts("test", 300, seed=0)}
    # membership is the hash rule alone
    assert all(split_of(level, ops) == "test" for level, ops in test_keys)


def test_ids_are_unique_and_levels_take_turns():
    records = arithmetic_prompts("train", 90, seed=1)
    assert len({r["id"] for r in records}) == 90
    assert [r["metadata"]["level"] for r in records[:6]] == [1, 2, 3, 1, 2, 3]
    assert {r["metadata"]["level"] for r in arithmetic_prompts("test", 10, levels=(2,))} == {2}


def test_answers_are_the_arithmetic_of_the_operands():
    formulas = {"more": lambda a, b: a + b, "gave": lambda a, b: a - b, "boxes": lambda a, b, c: a * b + c,
                "trade": lambda a, b, c: a + b - c, "savings": lambda a, b, c, d: a * b - c - d,
                "packs": lambda a, b, c, d: a * b + c * d}
    assert {t.key for level in LEVELS for t in TEMPLATES[level]} == set(formulas)
    for record in arithmetic_prompts("train", 120, seed=0) + arithmetic_prompts("test", 60, seed=0):
        level, key, ops = operands(record["id"])
        answer = record["metadata"]["answer"]
        assert answer == formulas[key](*ops) and answer >= 0 and record["metadata"]["level"] == level
        text = record["prompt"][0]["content"]
        assert all(str(x) in text for x in ops) and "####" in text


def test_sft_solutions_show_their_steps_and_end_in_the_answer():
    for record in arithmetic_sft_records(30, seed=0):
        question, reply = (m["content"] for m in record["messages"])
        for line in reply.splitlines()[:-1]:                      # "a op b = c" steps, each correct
            a, op, b, c = re.fullmatch(r"(\d+) ([-+*]) (\d+) = (\d+)", line).groups()
            assert OPS[op](int(a), int(b)) == int(c), line
        final = int(re.fullmatch(r"#### (\d+)", reply.splitlines()[-1]).group(1))
        assert final == int(reply.splitlines()[-2].split(" = ")[1])


def test_the_math_answer_reward_grades_solutions_against_the_metadata():
    prompts = arithmetic_prompts("test", 12, seed=0)
    reward = MathAnswerReward()
    right = [f"Working...\n#### {r['metadata']['answer']}" for r in prompts]
    wrong = [f"#### {r['metadata']['answer'] + 1}" for r in prompts]
    metadata = [r["metadata"] for r in prompts]
    assert reward([r["prompt"] for r in prompts], right, metadata)[0] == [1.0] * 12
    assert reward([r["prompt"] for r in prompts], wrong, metadata)[0] == [0.0] * 12


def test_builtin_source_and_its_metadata():
    records = load_source({"builtin": "arithmetic", "n": 8, "split": "test"}, kind="prompt", seed=0)
    assert records == arithmetic_prompts("test", 8, 0)
    assert metadata_provided({"builtin": "arithmetic"}) == ("id", "answer", "level")
    sft = load_source({"builtin": "arithmetic", "n": 4}, kind="conversation", seed=0)
    assert [m["role"] for m in sft[0]["messages"]] == ["user", "assistant"]
    with pytest.raises(ConfigError, match="data.sources.split"):
        load_source({"builtin": "arithmetic", "split": "validation"}, kind="prompt")
    with pytest.raises(ConfigError, match="metadata_fields"):
        load_source({"builtin": "arithmetic", "metadata_fields": {"answer": "x"}}, kind="prompt")


def test_written_files_read_back_as_prompt_sources_with_metadata(tmp_path, capsys):
    arithmetic_task.main(["--out", str(tmp_path), "--n-train", "9", "--n-test", "6", "--n-sft", "3", "--seed", "2"])
    assert set(json.loads(capsys.readouterr().out)) == {"prompts_train", "prompts_test", "sft_train"}
    spec = {"path": str(tmp_path / "prompts_test.jsonl"), "adapter": "generic", "kind": "prompt",
            "fields": {"prompt": "prompt"}, "metadata_fields": {"answer": "answer", "level": "level", "id": "id"}}
    read = load_source(spec, kind="prompt")
    made = arithmetic_prompts("test", 6, 2)
    assert [r["metadata"] for r in read] == [{**r["metadata"], "id": r["id"]} for r in made]
    assert [r["id"] for r in read] == [r["id"] for r in made]
    assert len((tmp_path / "sft_train.jsonl").read_text().splitlines()) == 3


def test_bad_requests_fail_with_the_key():
    with pytest.raises(ConfigError, match="data.sources.levels"):
        arithmetic_prompts("train", 3, levels=(4,))
    with pytest.raises(ConfigError, match="data.sources.n"):
        arithmetic_prompts("train", 0)
    with pytest.raises(ConfigError, match="could not draw"):
        arithmetic_prompts("test", 5_000, levels=(1,))            # level 1 holds about 1,100 held-out problems


def test_a_source_draws_only_the_levels_it_names():
    prompts = load_source({"builtin": "arithmetic", "split": "test", "n": 12, "levels": [1, 2]}, "prompt")
    assert [r["metadata"]["level"] for r in prompts] == [1, 2] * 6
    sft = load_source({"builtin": "arithmetic", "n": 6, "levels": [2]}, "conversation")
    assert [r["messages"][-1]["content"].count(" = ") for r in sft] == [2] * 6   # level 2: two worked steps
    with pytest.raises(ConfigError, match="data.sources.levels"):
        load_source({"builtin": "demo", "levels": [1]}, "prompt")
    with pytest.raises(ConfigError, match="levels"):
        load_source({"path": "x.jsonl", "adapter": "generic", "levels": [1]}, "prompt")
