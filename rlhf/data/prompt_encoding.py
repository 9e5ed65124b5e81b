"""Prompt ids and left padding for generation, shared by PPO rollouts (rlhf.rl) and evaluation
answers (rlhf.evaluate.generation), so a policy is asked the same ids in training and evaluation.

A prompt is tokenized segment by segment, as rlhf.data.templates tokenizes the SFT conversations
and the reward model's prompts, then the template's assistant prefix: the policy sees its prompt
exactly as it saw prompts in training. Batches are left-padded so every row's last prompt token
sits at the same position; the mask comes from lengths, never from `ids != pad_id`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlhf.core.errors import ConfigError
from rlhf.data.collate import length_mask, pad_sequences

OVERLONG_MODES = ("drop", "truncate")


def prompt_ids(tokenizer, template, prompt: list[dict]) -> list[int]:
    """Token ids of the prompt's segments followed by the assistant prefix, uncut."""
    texts = [s.text for s in template.segments(prompt, eos_token=tokenizer.eos_token)] + [template.generation_prefix]
    return [t for text in texts for t in tokenizer(text, add_special_tokens=False)["input_ids"]]


def encode_prompt(tokenizer, template, prompt: list[dict], max_prompt_tokens: int | None,
                  overlong: str = "drop") -> list[int] | None:
    """Prompt ids within `max_prompt_tokens` (None = no limit); None when an over-long prompt is dropped.

    Thesis §5.4 (docs/methods.md §4.2): PPO discards prompts over 1024 tokens (`drop`);
    `truncate` keeps the last `max_prompt_tokens` instead, so the latest turn survives (same side
    as §3.2) — what evaluation does, since every prompt of a set must be answered.
    """
    if overlong not in OVERLONG_MODES:
        raise ConfigError("data.overlong", f"unknown mode {overlong!r}; allowed: {', '.join(OVERLONG_MODES)}")
    ids = prompt_ids(tokenizer, template, prompt)
    if max_prompt_tokens is None or len(ids) <= max_prompt_tokens:
        return ids
    return None if overlong == "drop" else ids[len(ids) - max_prompt_tokens:]


def left_pad(seqs: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask [B, longest], long, real tokens right-aligned."""
    seqs = list(seqs)
    ids = pad_sequences(seqs, pad_id, side="left")
    return ids, length_mask([len(s) for s in seqs], ids.size(1), side="left")
