"""Each kind of bad input gives one clear error naming file and record, or a counted, logged skip.
"""

from __future__ import annotations

import json
import logging

import pytest

from rlhf.core.models import load_backbone_tokenizer
from rlhf.data.absolute_datamodule import AbsoluteDataModule, load_absolute_records
from rlhf.data.preference_datamodule import PreferenceDataModule
from rlhf.data.prompt_datamodule import PromptDataModule
from rlhf.data.sft_datamodule import SFTDataModule
from rlhf.core.errors import DataError

MODEL = {"source": "tiny", "tokenizer": "embedded:smollm2-135m"}
LONG = " ".join(["word"] * 400)


def jsonl(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def sft(path, max_length=128):
    return SFTDataModule(load_backbone_tokenizer(MODEL), sources=[{"path": path, "adapter": "generic", "fields": {"prompt": "prompt",
                                                                                  "response": "response"}}],
                         max_length=max_length, val_fraction=0.0, batch_size=2)


def test_empty_file(tmp_path):
    path = jsonl(tmp_path / "empty.jsonl", [])
    with pytest.raises(DataError, match=r"empty.jsonl: adapter 'generic' produced no records"):
        sft(path).setup()


def test_missing_field_names_file_record_and_fields(tmp_path):
    path = jsonl(tmp_path / "sft.jsonl", [{"prompt": "a", "response": "b"}, {"prompt": "a", "answer": "b"}])
    with pytest.raises(DataError, match=r"sft.jsonl, record 2: missing field 'response' \(fields present: "
                                        r"\['answer', 'prompt'\]\)"):
        sft(path).setup()


def test_wrong_type_and_broken_json(tmp_path):
    path = jsonl(tmp_path / "typed.jsonl", [{"prompt": 7, "response": "b"}])
    with pytest.raises(DataError, match=r"typed.jsonl, record 1: field 'prompt' should be str or list, got int"):
        sft(path).setup()
    path = jsonl(tmp_path / "broken.jsonl", [{"prompt": "a", "response": "b"}, '{"prompt": "a", '])
    with pytest.raises(DataError, match=r"broken.jsonl, record 2: invalid JSON"):
        sft(path).setup()


def test_every_sft_example_truncated_away_is_an_error(tmp_path):
    path = jsonl(tmp_path / "long.jsonl", [{"prompt": LONG, "response": "short"}])
    with pytest.raises(DataError, match="no train example has a response token left after truncation"):
        sft(path, max_length=32).setup()


def test_some_sft_examples_truncated_away_are_counted_and_logged(tmp_path, caplog):
    path = jsonl(tmp_path / "mixed.jsonl", [{"prompt": LONG, "response": "short"}, {"prompt": "a", "response": "b"}])
    with caplog.at_level(logging.INFO):
        sft(path, max_length=32).setup()
    assert "skipped 1 of 2 examples with no response token left after truncation" in caplog.text
    assert "data.max_length=32" in caplog.text
    assert "mixed.jsonl record 1" in caplog.text


def test_invalid_error_mode_names_file_and_record(tmp_path):
    path = jsonl(tmp_path / "mixed.jsonl", [{"prompt": "a", "response": "b"}, {"prompt": LONG, "response": "short"}])
    module = SFTDataModule(load_backbone_tokenizer(MODEL), sources=[{"path": path, "adapter": "generic", "fields": {"prompt": "prompt",
                                                                                    "response": "response"}}],
                           max_length=32, val_fraction=0.0, batch_size=2, invalid="error")
    with pytest.raises(DataError, match=r"mixed.jsonl record 2 has no response token left after truncation"):
        module.setup()


def test_empty_response_is_a_counted_logged_skip(tmp_path, caplog):
    path = jsonl(tmp_path / "empty_response.jsonl", [{"prompt": "a", "response": " "}, {"prompt": "a", "response": "b"}])
    with caplog.at_level(logging.INFO):
        module = sft(path)
        module.setup()
    assert len(module.train_set) == 1
    assert "skipped 1 of 2 examples with an empty response (" in caplog.text
    assert "empty_response.jsonl record 1" in caplog.text


def prompts(path, max_prompt_tokens=64, overlong="drop"):
    return PromptDataModule(load_backbone_tokenizer(MODEL), sources=[{"path": path, "adapter": "generic", "kind": "prompt",
                                     "fields": {"prompt": "prompt"}}], max_prompt_tokens=max_prompt_tokens,
                            overlong=overlong, batch_size=2)


def test_overlong_prompt_is_a_counted_logged_skip(tmp_path, caplog):
    path = jsonl(tmp_path / "prompts.jsonl", [{"prompt": LONG}, {"prompt": "short"}, {"prompt": "also short"}])
    with caplog.at_level(logging.INFO, logger="rlhf.data.prompt_datamodule"):
        module = prompts(path)
        module.setup()
    assert len(module.records) == 2                       # 3 prompts, the 400-word one is over 64 tokens
    assert "dropped 1 prompts longer than 64 tokens" in caplog.text


def test_only_overlong_prompts_is_an_error(tmp_path):
    path = jsonl(tmp_path / "prompts.jsonl", [{"prompt": LONG}])
    with pytest.raises(DataError, match=r"no prompt left .* after dropping 1 over data.max_prompt_tokens=64"):
        prompts(path).setup()


def absolute(path):
    return AbsoluteDataModule(load_backbone_tokenizer(MODEL), sources=[{"path": path}], max_length=64, min_prompt_tokens=16, val_fraction=0.0)


@pytest.mark.parametrize("label, message", [
    (1.5, r"record 2: 'label' is 1.5; need a number in \[0, 1\]"),
    (-0.1, r"record 2: 'label' is -0.1"),
    ("high", r"record 2: 'label' is 'high'"),
])
def test_label_out_of_range_names_the_record(tmp_path, label, message):
    path = jsonl(tmp_path / "abs.jsonl", [{"prompt": "p", "response": "r", "label": 0.5},
                                          {"prompt": "p", "response": "r", "label": label}])
    with pytest.raises(DataError, match=r"abs.jsonl, " + message):
        absolute(path).setup()


def test_record_without_quality_label_is_a_counted_logged_skip(tmp_path, caplog):
    path = jsonl(tmp_path / "abs.jsonl", [{"prompt": "p", "response": "r", "labels": {"quality": 0.5}},
                                          {"prompt": "p", "response": "r", "labels": {"humor": 0.5}},
                                          {"prompt": "p", "response": "r", "labels": {"quality": 0.9}}])
    with caplog.at_level(logging.INFO):
        records = load_absolute_records({"path": path}, "quality")
    assert [r["score"] for r in records] == [0.5, 0.9]
    assert "skipped 1 records without a quality label (records 2)" in caplog.text


def test_criterion_label_out_of_range(tmp_path):
    path = jsonl(tmp_path / "abs.jsonl", [{"prompt": "p", "response": "r", "labels": {"quality": 7}}])
    with pytest.raises(DataError, match=r"abs.jsonl, record 1: .*7"):
        absolute(path).setup()


def test_preference_schema_errors(tmp_path):
    path = jsonl(tmp_path / "pairs.jsonl", [{"prompt": "p", "chosen": "a"}])
    module = PreferenceDataModule(load_backbone_tokenizer(MODEL), sources=[{"path": path, "adapter": "pairs"}], max_length=64, min_prompt_tokens=16)
    with pytest.raises(DataError, match=r"pairs.jsonl, record 1: missing field 'rejected'"):
        module.setup()
    path = jsonl(tmp_path / "groups.jsonl", [{"prompt": [{"role": "user", "content": "p"}],
                                              "responses": ["a", "b"], "ranks": [0]}])
    module = PreferenceDataModule(load_backbone_tokenizer(MODEL), sources=[{"path": path, "adapter": "grouped"}], max_length=64, min_prompt_tokens=16)
    with pytest.raises(DataError, match=r"groups.jsonl, record 1: 2 responses but 1 ranks"):
        module.setup()
