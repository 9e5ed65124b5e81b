import gzip
import json

import pytest

from rlhf.core.errors import ConfigError, DataError
from rlhf.annotators.base import prompt_text
from rlhf.evaluate.prompt_sets import load_jsonl_prompts, load_mt_bench, load_prompt_set, load_user_oriented


def write(path, lines):
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.mark.parametrize("name, count", [("mt_bench", 80), ("vicuna", 80), ("koala", 180), ("user_oriented", 252),
                                          ("oasst_en_100", 100), ("oasst_lottery_250", 250)])
def test_real_prompt_sets_load_with_readme_counts(shared_data_dir, name, count):
    records = load_prompt_set(name, shared_data_dir)
    assert len(records) == count and len({r["id"] for r in records}) == count
    assert all(r["dataset"] == name and r["prompt"][-1]["role"] == "user" and r["prompt"][-1]["content"]
               for r in records)


def test_mt_bench_second_turn_becomes_a_followup(shared_data_dir):
    with gzip.open(shared_data_dir / "eval" / "mt_bench_question.jsonl.gz", "rt") as handle:
        first = json.loads(handle.readline())
    record = load_prompt_set("mt_bench", shared_data_dir, limit=1, both_turns=True)[0]
    assert record["prompt"] == [{"role": "user", "content": first["turns"][0]}]
    assert record["followups"] == first["turns"][1:] and record["category"] == first["category"]


def test_user_oriented_joins_instruction_and_input(tmp_path):
    path = write(tmp_path / "u.jsonl", [
        {"id": "u1", "motivation_app": "Gmail", "instruction": "Reply politely.",
         "instances": [{"input": "Hi!", "output": ""}]},
        {"id": "u2", "motivation_app": "Docs", "instruction": "Summarise.", "instances": [{"input": "  ", "output": ""}]},
    ])
    records = load_user_oriented(path)
    assert records[0]["prompt"][0]["content"] == "Reply politely.\n\nHi!" and records[0]["category"] == "Gmail"
    assert records[1]["prompt"][0]["content"] == "Summarise."


def test_bad_records_name_file_and_record(tmp_path):
    path = write(tmp_path / "mt.jsonl", [{"question_id": 1, "turns": ["ok"]}, {"question_id": 2, "turns": []}])
    with pytest.raises(DataError, match="record 2.*turns") as error:
        load_mt_bench(path)
    assert error.value.source == str(path)
    bad_messages = write(tmp_path / "m.jsonl", [{"prompt": [{"role": "assistant", "content": "x"}]}])
    with pytest.raises(DataError, match="ending with a user message"):
        load_jsonl_prompts(bad_messages, "mine")
    with pytest.raises(ConfigError, match="unknown prompt set"):
        load_prompt_set("alpaca_eval", tmp_path)


def test_any_jsonl_with_messages_and_prompt_text(tmp_path):
    thread = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    path = write(tmp_path / "p.jsonl", [{"key": "k1", "messages": thread, "cat": "chat"}])
    (record,) = load_jsonl_prompts(path, "mine", prompt_field="messages", id_field="key", category_field="cat")
    assert record == {"id": "k1", "dataset": "mine", "prompt": thread, "category": "chat"}
    assert prompt_text(thread) == "System: Be brief.\n\nUser: Hi"


def test_a_repeated_id_is_named_with_both_lines_once_read_and_limit_reads_the_first_records(tmp_path):
    from rlhf.evaluate.prompt_sets import iter_jsonl_prompts

    path = write(tmp_path / "p.jsonl", [{"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y"}, "bare",
                                        {"id": "a", "prompt": "z"}])
    with pytest.raises(DataError, match=r"p.jsonl, record 4: id 'a' is already on line 1"):
        list(iter_jsonl_prompts(path, "mine"))
    assert [r["id"] for r in iter_jsonl_prompts(path, "mine", limit=3)] == ["a", "b", "mine_2"]
