"""Evaluation answers and PPO rollouts ask the policy the same ids: both paths encode and left-pad
prompts through rlhf.data.prompt_encoding, tokenized as the training templates tokenize them."""

from __future__ import annotations

import pytest
import torch

from rlhf.core.models import load_backbone_tokenizer
from rlhf.data.jsonl import write_jsonl_atomic
from rlhf.data.prompt_datamodule import PromptDataModule
from rlhf.data.prompt_encoding import left_pad, prompt_ids
from rlhf.data.templates import get_template, tokenize_conversation
from rlhf.evaluate.generation import DecodingSettings, encode_batch

MODEL = {"source": "tiny", "tokenizer": "embedded:smollm2-135m"}
LIMIT = 48
PROMPTS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Answer in one line."}, {"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
     {"role": "user", "content": "Another one?"}],
    [{"role": "user", "content": "Tell me everything about the weather, " * 12 + "please."}],  # over LIMIT
]


@pytest.fixture(scope="module")
def tokenizer():
    return load_backbone_tokenizer(MODEL)


@pytest.mark.parametrize("template", ["chatml", "ice_grt"])
def test_evaluation_and_rollout_paths_give_the_same_ids_and_masks(tmp_path, tokenizer, template):
    # The PPO path: prompts read by PromptDataModule (any source with a `prompt`), then the rollout's left_pad.
    path = write_jsonl_atomic(tmp_path / "prompts.jsonl",
                              [{"prompt": p, "responses": ["-"], "ranks": [0]} for p in PROMPTS])
    data = PromptDataModule(tokenizer, sources=[{"path": str(path), "adapter": "grouped"}], template=template,
                            batch_size=len(PROMPTS), max_prompt_tokens=LIMIT, overlong="truncate", shuffle=False)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    assert batch["prompts"] == PROMPTS
    rollout_ids, rollout_mask = left_pad(batch["input_ids"], tokenizer.pad_token_id)

    eval_ids, eval_mask = encode_batch(tokenizer, PROMPTS, DecodingSettings(template=template, max_prompt_tokens=LIMIT))

    assert torch.equal(rollout_ids, eval_ids)
    assert torch.equal(rollout_mask, eval_mask)
    full = prompt_ids(tokenizer, get_template(template, tokenizer.eos_token), PROMPTS[-1])
    assert len(full) > LIMIT and eval_ids[-1].tolist() == full[-LIMIT:]   # the long prompt kept its tail


@pytest.mark.parametrize("template", ["chatml", "ice_grt"])
def test_prompt_ids_are_the_training_tokens_before_the_reply(tokenizer, template):
    chat = get_template(template, tokenizer.eos_token)
    for prompt in PROMPTS[:3]:
        ids = prompt_ids(tokenizer, chat, prompt)
        trained = tokenize_conversation(tokenizer, prompt + [{"role": "assistant", "content": "Sure."}], chat)
        assert trained["input_ids"][:len(ids)] == ids
        assert trained["labels"][len(ids)] != -100   # the reply starts right after the prompt


def test_left_pad_masks_from_lengths_not_pad_ids():
    ids, mask = left_pad([[7, 0, 9], [0], []], pad_id=0)
    assert ids.tolist() == [[7, 0, 9], [0, 0, 0], [0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 0, 0]]
