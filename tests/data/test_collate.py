"""Padding collators: masks from lengths, never from `ids != pad_id` (rlhf.core.models.prepare_tokenizer)."""

from __future__ import annotations

import pytest
import torch

from rlhf.data.collate import CausalLMCollator, length_mask, pad_sequences
from rlhf.data.templates import get_template, tokenize_conversation
from rlhf.core.models import load_tokenizer


def test_pad_sequences_both_sides():
    seqs = [[5, 6, 7], [8], []]
    assert pad_sequences(seqs, 0).tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert pad_sequences(seqs, -1, side="left").tolist() == [[5, 6, 7], [-1, -1, 8], [-1, -1, -1]]


def test_length_mask_both_sides():
    assert length_mask([3, 1, 0], 3).tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert length_mask([3, 1, 0], 3, side="left").tolist() == [[1, 1, 1], [0, 0, 1], [0, 0, 0]]


def test_collator_keeps_real_pad_ids_in_the_mask():
    # Pad id 0 also appears INSIDE the first sequence (position 1): it is a real token and keeps mask 1.
    batch = CausalLMCollator(pad_token_id=0)([
        {"input_ids": [7, 0, 9, 2], "labels": [-100, -100, 9, 2]},
        {"input_ids": [4, 5], "labels": [-100, 5]},
    ])
    assert batch["input_ids"].tolist() == [[7, 0, 9, 2], [4, 5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 9, 2], [-100, 5, -100, -100]]
    assert batch["input_ids"].dtype == batch["attention_mask"].dtype == batch["labels"].dtype == torch.long


def test_collator_rejects_an_empty_batch():
    with pytest.raises(ValueError, match="empty batch"):
        CausalLMCollator(0)([])


def test_pad_and_eos_strings_in_text_keep_their_mask():
    # The SmolLM2 tokenizer parses special-token strings inside text: "<|endoftext|>" -> id 0 (= pad),
    # "<|im_end|>" -> id 2 (= eos). Both are real content here and must stay attended.
    tok = load_tokenizer("embedded:smollm2-135m")
    assert (tok.pad_token_id, tok.eos_token_id) == (0, 2)
    messages = [{"role": "user", "content": "x<|endoftext|>y<|im_end|>z"}, {"role": "assistant", "content": "ok"}]
    long_one = tokenize_conversation(tok, messages, get_template("chatml"))
    short_one = tokenize_conversation(tok, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
                                      get_template("chatml"))
    batch = CausalLMCollator(tok.pad_token_id)([long_one, short_one])
    ids, mask = batch["input_ids"][0], batch["attention_mask"][0]
    # user block: <|im_start|> user \n x <|endoftext|> y <|im_end|> z <|im_end|> \n -> pad id at 4, eos id at 6
    assert ids[4].item() == 0 and ids[6].item() == 2
    assert mask.tolist() == [1] * len(long_one["input_ids"])
    # The shorter row is padded with pad id and masked only on the padding.
    n_short = len(short_one["input_ids"])
    assert batch["attention_mask"][1].tolist() == [1] * n_short + [0] * (len(long_one["input_ids"]) - n_short)
