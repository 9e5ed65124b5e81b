"""Per-prompt metadata: mapped from JSONL and hub records by `metadata_fields`, carried into the
prompt batches PPO rolls out from, and missing fields named with file and record."""

from __future__ import annotations

import pytest

from rlhf.core.errors import DataError
from rlhf.core.models import load_backbone_tokenizer
from rlhf.data.jsonl import write_jsonl_atomic
from rlhf.data.prompt_datamodule import PromptDataModule
from rlhf.data.source_spec import load_source, metadata_provided

ROWS = [{"question": "What is 2 + 2?", "answer": "#### 4", "difficulty": "easy"},
        {"question": "What is 6 * 7?", "answer": "#### 42", "difficulty": "hard"}]
SPEC = {"adapter": "generic", "kind": "prompt", "fields": {"prompt": "question"},
        "metadata_fields": {"answer": "answer", "subset": "difficulty"}}


@pytest.fixture(scope="module")
def tokenizer():
    return load_backbone_tokenizer({"source": "tiny", "tokenizer": "embedded:smollm2-135m"})


def test_jsonl_records_carry_the_mapped_fields(tmp_path):
    path = write_jsonl_atomic(tmp_path / "q.jsonl", ROWS)
    records = load_source({**SPEC, "path": str(path)}, kind="prompt")
    assert [r["metadata"] for r in records] == [{"answer": "#### 4", "subset": "easy"},
                                                {"answer": "#### 42", "subset": "hard"}]
    assert metadata_provided({**SPEC, "path": str(path)}) == ("id", "answer", "subset")
    assert "metadata" not in load_source({"path": str(path), **{k: v for k, v in SPEC.items() if k != "metadata_fields"}},
                                         kind="prompt")[0]


def test_a_missing_source_field_names_file_record_and_key(tmp_path):
    path = write_jsonl_atomic(tmp_path / "q.jsonl", [ROWS[0], {"question": "Why?"}])
    with pytest.raises(DataError, match=r"q.jsonl, record 2: metadata field 'answer' is read from 'answer'"):
        load_source({**SPEC, "path": str(path)}, kind="prompt")


def test_hub_rows_go_through_the_same_mapping(monkeypatch):
    import datasets

    asked = {}

    def load_dataset(name, config=None, split=None):
        asked.update(name=name, split=split)
        return ROWS

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    records = load_source({**SPEC, "path": "openai/gsm8k", "split": "test"}, kind="prompt")
    assert asked == {"name": "openai/gsm8k", "split": "test"}
    assert records[1]["metadata"] == {"answer": "#### 42", "subset": "hard"}


def test_prompt_batches_carry_metadata_with_the_prompt_id(tmp_path, tokenizer):
    path = write_jsonl_atomic(tmp_path / "q.jsonl", ROWS)
    data = PromptDataModule(tokenizer, sources=[{**SPEC, "path": str(path)}], batch_size=2, shuffle=False)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    assert batch["ids"] == ["0:0", "0:1"]
    assert batch["metadata"] == [{"answer": "#### 4", "subset": "easy", "id": "0:0"},
                                 {"answer": "#### 42", "subset": "hard", "id": "0:1"}]


def test_builtin_arithmetic_batches_hold_answer_and_level(tokenizer):
    data = PromptDataModule(tokenizer, sources=[{"builtin": "arithmetic", "n": 6}], batch_size=3, shuffle=False)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    assert [set(m) for m in batch["metadata"]] == [{"id", "answer", "level"}] * 3
    assert [m["id"] for m in batch["metadata"]] == batch["ids"]
    demo = PromptDataModule(tokenizer, sources=[{"builtin": "demo", "n": 4}], batch_size=2, shuffle=False)
    demo.setup()
    assert [set(m) for m in next(iter(demo.train_dataloader()))["metadata"]] == [{"id"}] * 2


def test_real_gsm8k_prompts_carry_answers_the_math_reward_accepts(shared_data_dir):
    from rlhf.rewards.verifiable import MathAnswerReward

    spec = {"path": str(shared_data_dir / "sft" / "gsm8k_train.jsonl.gz"), "adapter": "generic", "kind": "prompt",
            "fields": {"prompt": "question"}, "metadata_fields": {"answer": "answer"}, "limit": 40}
    records = load_source(spec, kind="prompt")
    metadata = [r["metadata"] for r in records]
    assert all("####" in m["answer"] for m in metadata)
    # each reference solution, given back as the response, is graded correct
    scores, details = MathAnswerReward()([r["prompt"] for r in records], [m["answer"] for m in metadata], metadata)
    assert scores == [1.0] * len(records), [m["answer"][-20:] for m, s in zip(metadata, scores) if not s]
