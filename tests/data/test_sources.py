"""Data adapters: fixtures written here in each source's schema, records skipped with a counted
reason, then bad records naming file and line. Every record of the real extracts in ../shared/data
goes through its adapter in test_real_files.py."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from rlhf.data.sources import (HH_DIFFERENT_CONTEXTS, OASST_NO_GROUP, OASST_NO_THREAD, SourceTally,
                               language_not_kept, load_records)
from rlhf.core.errors import ConfigError, DataError


def _write(path: Path, records: list, raw_lines: dict[int, str] | None = None) -> Path:
    """JSONL writer; `raw_lines` puts exact text at given 1-based lines (for broken records)."""
    lines = [json.dumps(r) for r in records]
    for number, text in (raw_lines or {}).items():
        lines.insert(number - 1, text)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def _qa(messages: list[dict]) -> tuple[str, str]:
    assert [m["role"] for m in messages] == ["user", "assistant"]
    return messages[0]["content"], messages[1]["content"]


def test_alpaca_with_and_without_input(tmp_path):
    path = _write(tmp_path / "alpaca.jsonl.gz", [
        {"instruction": "Add 2 and 3.", "input": "", "output": "5"},
        {"instruction": "Translate to English.", "input": "chat", "output": "cat"},
    ])
    first, second = load_records(path, "alpaca")
    assert _qa(first["messages"]) == ("Add 2 and 3.", "5")
    assert _qa(second["messages"]) == ("Translate to English.\n\nchat", "cat")
    assert first["source"] == "alpaca"


def test_dolly_ignores_context_and_category(tmp_path):
    # Dolly-15k schema: instruction / context / response / category (no Dolly file in ../shared/data).
    path = _write(tmp_path / "dolly.jsonl", [
        {"instruction": "Who wrote Faust?", "context": "Faust is a tragic play.", "response": "Goethe.",
         "category": "closed_qa"},
        {"instruction": "Name a colour.", "context": "", "response": "Blue.", "category": "brainstorming"},
    ])
    records = load_records(path, "dolly")
    assert [_qa(r["messages"]) for r in records] == [("Who wrote Faust?", "Goethe."), ("Name a colour.", "Blue.")]
    assert {r["source"] for r in records} == {"dolly"}


def test_gsm8k_strips_calculator_annotations(tmp_path):
    path = _write(tmp_path / "gsm8k.jsonl", [
        {"question": "Tom has 2 bags of 3 apples. How many apples?", "answer": "2*3=<<2*3=6>>6 apples\n#### 6"},
    ])
    (record,) = load_records(path, "gsm8k")
    assert _qa(record["messages"]) == ("Tom has 2 bags of 3 apples. How many apples?", "2*3=6 apples\n#### 6")


def _oasst_tree() -> dict:
    """Q -> {A1 rank 1, A2 rank 0 -> Q2 -> {B rank 0, C rank 1 (deleted), D unranked}, A3 unranked}."""
    q2 = {"text": "Q2", "role": "prompter", "replies": [
        {"text": "B", "role": "assistant", "rank": 0, "replies": []},
        {"text": "C", "role": "assistant", "rank": 1, "deleted": True, "replies": []},
        {"text": "D", "role": "assistant", "rank": None, "replies": []},
    ]}
    return {"text": "Q", "role": "prompter", "lang": "en", "replies": [
        {"text": "A1", "role": "assistant", "rank": 1, "replies": []},
        {"text": "A2", "role": "assistant", "rank": 0, "replies": [q2]},
        {"text": "A3", "role": "assistant", "rank": None, "replies": []},
    ]}


def test_oasst_threads_follow_top_ranked_reply(tmp_path):
    # Tree export nests the root under "prompt"; message export puts it at top level. Both work.
    tree = _write(tmp_path / "tree.jsonl", [{"message_tree_id": "t1", "prompt": _oasst_tree()}])
    flat = _write(tmp_path / "message.jsonl", [_oasst_tree()])
    expected = [("user", "Q"), ("assistant", "A2"), ("user", "Q2"), ("assistant", "B")]
    for path in (tree, flat):
        (thread,) = load_records(path, "oasst_threads")
        assert [(m["role"], m["content"]) for m in thread["messages"]] == expected
    # Language filter drops the tree (it produces nothing, which is an error for a whole file).
    with pytest.raises(DataError, match="produced no records"):
        load_records(tree, "oasst_threads", languages=["de"])


def test_oasst_thread_ending_on_a_prompter_is_cut_back_to_the_last_assistant(tmp_path):
    root = {"text": "Q", "role": "prompter", "replies": [
        {"text": "A", "role": "assistant", "rank": 0, "replies": [{"text": "Q2", "role": "prompter", "replies": []}]},
    ]}
    (thread,) = load_records(_write(tmp_path / "t.jsonl", [root]), "oasst_threads")
    assert [m["content"] for m in thread["messages"]] == ["Q", "A"]


def test_oasst_ranked_siblings(tmp_path):
    # Groups: at Q the ranked replies A1 (1), A2 (0); at Q2 only B is ranked and usable (C deleted) -> no group.
    (group,) = load_records(_write(tmp_path / "m.jsonl", [_oasst_tree()]), "oasst_ranked")
    assert group["prompt"] == [{"role": "user", "content": "Q"}]
    assert group["responses"] == ["A1", "A2"] and group["ranks"] == [1, 0]


def test_hh_rlhf_shared_dialogue_and_two_endings(tmp_path):
    chosen = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Bye\n\nAssistant: Goodbye"
    rejected = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Bye\n\nAssistant: Go away"
    (group,) = load_records(_write(tmp_path / "hh.jsonl", [{"chosen": chosen, "rejected": rejected}]), "hh_rlhf")
    assert group["prompt"] == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                               {"role": "user", "content": "Bye"}]
    assert group["responses"] == ["Goodbye", "Go away"] and group["ranks"] == [0, 1]


def test_hh_rlhf_pair_with_different_contexts_is_skipped(tmp_path, caplog):
    # Line 2 mirrors real dev record 1518: the chosen side has two Assistant turns in a row.
    good = {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"}
    doubled = {"chosen": "\n\nHuman: a\n\nAssistant: b\n\nAssistant: d", "rejected": "\n\nHuman: a\n\nAssistant: c"}
    path = _write(tmp_path / "hh.jsonl", [good, doubled, good])
    tally = SourceTally(str(path))
    assert len(load_records(path, "hh_rlhf", tally=tally)) == 2
    assert (tally.read, tally.parsed, tally.examples) == (3, 2, 2)
    assert tally.skipped == {HH_DIFFERENT_CONTEXTS: 1} and tally.skipped_records == {HH_DIFFERENT_CONTEXTS: [2]}
    assert str(path) in caplog.text and f"{HH_DIFFERENT_CONTEXTS}: 1, record 2" in caplog.text


def test_oasst_skips_are_counted_by_reason(tmp_path):
    # 1: a German tree; 2: a root whose only reply was deleted; 3: a full tree; 4: a root with one
    # ranked reply. Kept languages [en]: 1 skipped for its language by every adapter.
    german = {**_oasst_tree(), "lang": "de"}
    deleted_only = {"text": "R", "role": "prompter", "lang": "en",
                    "replies": [{"text": "x", "role": "assistant", "rank": 0, "deleted": True, "replies": []}]}
    single = {"text": "S", "role": "prompter", "lang": "en",
              "replies": [{"text": "y", "role": "assistant", "rank": 0, "replies": []}]}
    path = _write(tmp_path / "m.jsonl", [german, deleted_only, _oasst_tree(), single])
    counts = {}
    for adapter in ("oasst_threads", "oasst_ranked", "oasst_prompts"):
        tally = SourceTally(str(path))
        records = load_records(path, adapter, languages=["en"], tally=tally)
        assert tally.read == 4 and tally.parsed + sum(tally.skipped.values()) == 4
        assert tally.examples == len(records)
        counts[adapter] = (tally.parsed, len(records), dict(tally.skipped))
    german_skip = {language_not_kept("de"): 1}
    # threads: tree 3 gives Q A2 Q2 B, tree 4 gives S y; tree 2 has no usable reply
    assert counts["oasst_threads"] == (2, 2, {**german_skip, OASST_NO_THREAD: 1})
    # ranked: only tree 3 has a prompter with two ranked replies (Q: A1, A2)
    assert counts["oasst_ranked"] == (1, 1, {**german_skip, OASST_NO_GROUP: 2})
    # prompts: tree 2's root alone (its reply was deleted), [Q] and [Q A2 Q2] of tree 3, [S] of tree 4
    assert counts["oasst_prompts"] == (3, 4, german_skip)
    prompts = load_records(path, "oasst_prompts", languages=["en"])
    assert [[m["content"] for m in r["prompt"]] for r in prompts] == [["R"], ["Q"], ["Q", "A2", "Q2"], ["S"]]


def test_a_file_where_every_record_is_skipped_names_the_reasons(tmp_path):
    path = _write(tmp_path / "t.jsonl", [{**_oasst_tree(), "lang": "fr"}])
    with pytest.raises(DataError, match=r"produced no records \(1 records: 0 parsed into 0 examples, 1 skipped "
                                        r"\(language 'fr' not in data.sources.languages: 1, record 1\)\)"):
        load_records(path, "oasst_threads", languages=["en"])


def test_limit_stops_the_tally_at_the_kept_examples(tmp_path):
    path = _write(tmp_path / "a.jsonl", [{"instruction": f"i{n}", "output": f"o{n}"} for n in range(5)])
    tally = SourceTally(str(path))
    assert len(load_records(path, "alpaca", limit=2, tally=tally)) == 2
    assert (tally.read, tally.parsed, tally.examples) == (2, 2, 2)


def test_generic_jsonl_field_mapping(tmp_path):
    path = _write(tmp_path / "custom.jsonl", [
        {"question": "Capital of France?", "reply": "Paris.", "persona": "You are terse."},
        {"question": "2+2?", "reply": "4"},
    ])
    fields = {"prompt": "question", "response": "reply", "system": "persona"}
    first, second = load_records(path, "generic", fields=fields)
    assert first["messages"] == [{"role": "system", "content": "You are terse."},
                                 {"role": "user", "content": "Capital of France?"},
                                 {"role": "assistant", "content": "Paris."}]
    assert second["messages"] == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    (prompt_only, _) = load_records(path, "generic", fields=fields, kind="prompt")
    assert prompt_only["prompt"][-1] == {"role": "user", "content": "Capital of France?"}


def test_limit_takes_the_first_records(tmp_path):
    path = _write(tmp_path / "a.jsonl", [{"instruction": f"i{n}", "output": f"o{n}"} for n in range(5)])
    assert [r["messages"][0]["content"] for r in load_records(path, "alpaca", limit=2)] == ["i0", "i1"]


@pytest.mark.parametrize(
    ("adapter", "good", "bad", "message"),
    [
        ("alpaca", {"instruction": "a", "output": "b"}, {"instruction": "a"}, "missing field 'output'"),
        ("dolly", {"instruction": "a", "response": "b"}, {"instruction": "a", "response": 3},
         "field 'response' should be str"),
        ("gsm8k", {"question": "a", "answer": "b"}, ["not", "an", "object"], "expected a JSON object"),
        ("hh_rlhf", {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"},
         {"chosen": "no turns here", "rejected": "x"}, "not an HH-RLHF transcript"),
        ("oasst_threads", {"text": "q", "role": "prompter", "replies": [{"text": "a", "role": "assistant"}]},
         {"text": "q", "role": "moderator"}, "role 'moderator'"),
    ],
)
def test_bad_record_names_file_and_line(tmp_path, adapter, good, bad, message):
    # Lines: 1 good, 2 blank (skipped but counted), 3 good, 4 bad -> "record 4".
    path = _write(tmp_path / f"{adapter}.jsonl", [good, good, bad], raw_lines={2: ""})
    with pytest.raises(DataError, match=message) as info:
        load_records(path, adapter)
    assert info.value.source == str(path) and info.value.record == 4
    assert f"{path}, record 4:" in str(info.value)


def test_invalid_json_line_and_missing_file_and_unknown_adapter(tmp_path):
    path = _write(tmp_path / "broken.jsonl", [{"instruction": "a", "output": "b"}], raw_lines={2: "{not json"})
    with pytest.raises(DataError, match="invalid JSON") as info:
        load_records(path, "alpaca")
    assert info.value.record == 2
    with pytest.raises(DataError, match="file not found"):
        load_records(tmp_path / "absent.jsonl", "alpaca")
    with pytest.raises(ConfigError, match="unknown adapter 'vicuna'"):
        load_records(path, "vicuna")


# ---- the real extracts (../shared/data; README gives the counts) ----


def test_shared_alpaca_and_gsm8k(shared_data_dir):
    alpaca = load_records(shared_data_dir / "sft/alpaca_data_5000.jsonl.gz", "alpaca")
    assert len(alpaca) == 5000
    assert all(r["messages"][1]["role"] == "assistant" for r in alpaca)
    gsm8k = load_records(shared_data_dir / "sft/gsm8k_train.jsonl.gz", "gsm8k")
    assert len(gsm8k) == 7473
    assert not any("<<" in r["messages"][1]["content"] for r in gsm8k)
    assert all("####" in r["messages"][1]["content"] for r in gsm8k)


def test_shared_oasst_both_formats(shared_data_dir):
    threads = load_records(shared_data_dir / "sft/oasst_en_100_tree.jsonl.gz", "oasst_threads")
    assert len(threads) == 100  # one top-ranked thread per tree
    for thread in threads:
        roles = [m["role"] for m in thread["messages"]]
        assert roles[0] == "user" and roles[-1] == "assistant"
        assert all(a != b for a, b in zip(roles, roles[1:]))  # turns alternate
    # README: 212 sibling groups with >= 2 ranked replies, 754 pairwise comparisons; same trees in both formats.
    for name in ("preference/oasst_en_100_message.jsonl.gz", "sft/oasst_en_100_tree.jsonl.gz"):
        groups = load_records(shared_data_dir / name, "oasst_ranked")
        assert len(groups) == 212
        assert sum(len(g["ranks"]) * (len(g["ranks"]) - 1) // 2 for g in groups) == 754


def test_shared_hh_rlhf(shared_data_dir):
    groups = load_records(shared_data_dir / "preference/hh_rlhf_harmless_base_test_dev.jsonl.gz", "hh_rlhf")
    # 1,800 pairs, of which records 1318, 1516 and 1518 do not share the dialogue (checked by eye) -> 1,797.
    assert len(groups) == 1797
    assert all(g["prompt"][-1]["role"] == "user" and g["ranks"] == [0, 1] for g in groups)


def test_shared_file_through_generic_mapping(shared_data_dir):
    # GSM8K test split read as generic JSONL: question -> prompt, answer -> response.
    records = load_records(shared_data_dir / "eval/gsm8k_test.jsonl.gz", "generic",
                           fields={"prompt": "question", "response": "answer"})
    assert len(records) == 1319
