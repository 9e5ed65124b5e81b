from __future__ import annotations

import pytest

from rlhf.annotators.criteria import ends_properly, words
from rlhf.data import demo_task
from rlhf.data.demo_task import SPLITS, demo_prompts, demo_sft_records
from rlhf.core.errors import ConfigError


def prompt_text(record: dict) -> str:
    return record["prompt"][0]["content"]


def test_splits_partition_the_template_topic_grid():
    # 16 templates x 48 topics = 768 distinct prompts, each in exactly one split.
    assert len(demo_task.TEMPLATES) * len(demo_task.TOPICS) == 768
    splits = {s: demo_prompts(s) for s in SPLITS}
    ids = [r["id"] for s in SPLITS for r in splits[s]]
    texts = [prompt_text(r) for s in SPLITS for r in splits[s]]
    assert len(ids) == 768 and len(set(ids)) == 768
    assert len(set(texts)) == 768
    # Hash buckets 35 / 40 / 25 out of 100: each split holds a share near that, several hundred prompts in all.
    assert 200 <= len(splits["sft"]) <= 340 and 240 <= len(splits["rl"]) <= 380 and 130 <= len(splits["eval"]) <= 250
    # The configs ask for 256 RL prompts (configs/data/prompts_demo.yaml).
    assert len(splits["rl"]) >= 256


def test_split_membership_does_not_depend_on_seed():
    for split in SPLITS:
        assert {r["id"] for r in demo_prompts(split, seed=0)} == {r["id"] for r in demo_prompts(split, seed=7)}


def test_same_seed_same_prompts_other_seed_other_order():
    a, b, c = demo_prompts("rl", 20, seed=3), demo_prompts("rl", 20, seed=3), demo_prompts("rl", 20, seed=4)
    assert a == b
    assert [r["id"] for r in a] != [r["id"] for r in c]
    assert len(a) == 20


def test_prompt_shape_is_a_single_user_turn():
    for record in demo_prompts("eval", 5):
        assert set(record) == {"id", "prompt"}
        assert record["prompt"] == [{"role": "user", "content": prompt_text(record)}]
        assert prompt_text(record).endswith(("?", "."))


def test_template_fills_in_the_topic():
    # Written out by hand from TEMPLATES["tips"] and the first topic.
    record = next(r for r in demo_prompts("sft") + demo_prompts("rl") + demo_prompts("eval") if r["id"] == "demo-tips-00")
    assert prompt_text(record) == "Give me three tips for saving money on groceries."


def test_bad_split_or_count_raises_config_error():
    with pytest.raises(ConfigError, match="one of"):
        demo_prompts("train", 4)
    with pytest.raises(ConfigError, match="has .* prompts; asked for 100000"):
        demo_prompts("eval", 100000)
    with pytest.raises(ConfigError, match="n > 0"):
        demo_sft_records(0)


def test_sft_records_are_complete_short_varied_and_deterministic():
    records = demo_sft_records(300, seed=1)
    assert records == demo_sft_records(300, seed=1)
    assert len(records) == 300
    sft_questions = {prompt_text(r) for r in demo_prompts("sft")}
    replies = []
    for record in records:
        user, assistant = record["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        # SFT records only use SFT-split questions, so RL and eval prompts stay unseen.
        assert user["content"] in sft_questions
        reply = assistant["content"]
        assert ends_properly(reply)
        assert 15 <= len(words(reply)) <= 70
        replies.append(reply)
    # Half the replies open politely and half close politely, independently: with 300 draws each
    # share lies well inside 0.35..0.65.
    opened = sum(r.startswith(tuple(o for o in demo_task.OPENERS)) for r in replies) / 300
    closed = sum(r.endswith(tuple(c.strip() for c in demo_task.CLOSERS)) for r in replies) / 300
    assert 0.35 < opened < 0.65 and 0.35 < closed < 0.65
    assert len(set(replies)) > 250


def test_tips_reply_is_built_from_the_topic_tips():
    # "tips" answers list the three tips in order (text assembled by hand from TOPICS).
    body = demo_task._answer_body("tips", "cooking rice")
    assert body == ("Here are three tips for cooking rice. First, rinse the rice until the water runs clear. "
                    "Second, use the right ratio of water to rice for the variety. "
                    "Third, let it rest covered for a few minutes after cooking.")
