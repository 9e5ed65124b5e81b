"""A prompt field may hold a whole conversation (multi-turn RL prompts); bad ones name file, record and field."""

from __future__ import annotations

import pytest

from rlhf.core.errors import DataError
from rlhf.data.sources import generic, pairs

WHERE = ("prompts.jsonl", 3)
FIELDS = {"prompt": "dialogue"}


def test_a_conversation_prompt_is_kept_turn_for_turn():
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
             {"role": "user", "content": "How do magnets work?"}]
    assert list(generic({"dialogue": turns}, WHERE, FIELDS, kind="prompt")) == [{"prompt": turns, "source": "generic"}]


def test_a_string_prompt_is_one_user_turn_after_the_system_turn():
    record = {"dialogue": "Why is the sky blue?", "sys": "Be brief."}
    out = list(generic(record, WHERE, {**FIELDS, "system": "sys"}, kind="prompt"))
    assert out[0]["prompt"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Why is the sky blue?"}]


@pytest.mark.parametrize("value, message", [
    (7, r"prompts.jsonl, record 3: field 'dialogue' should be str or list, got int"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "must end with a user turn"),
    ([{"role": "narrator", "content": "a"}], r"field 'dialogue'\[0\] needs role system/user/assistant"),
    ([], "must end with a user turn"),
])
def test_a_bad_conversation_prompt_names_file_record_and_field(value, message):
    with pytest.raises(DataError, match=message):
        list(generic({"dialogue": value}, WHERE, FIELDS, kind="prompt"))


def test_a_type_error_on_a_field_that_takes_two_types_names_both():
    with pytest.raises(DataError, match="field 'prompt' should be str or list, got int"):
        list(pairs({"prompt": 1, "chosen": "a", "rejected": "b"}, WHERE))
