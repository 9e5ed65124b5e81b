"""Padding collators. Masks come from sequence lengths, never from `ids != pad_id`
(SmolLM2's pad and eos share an id in the GGUF tokenizer)."""

from __future__ import annotations

import torch

from rlhf.data.templates import IGNORE_INDEX


def pad_sequences(seqs: list[list[int]], value: int, side: str = "right") -> torch.Tensor:
    width = max((len(s) for s in seqs), default=0)
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        if not s:
            continue
        if side == "right":
            out[i, : len(s)] = torch.as_tensor(s)
        else:
            out[i, width - len(s) :] = torch.as_tensor(s)
    return out


def length_mask(lengths: list[int], width: int, side: str = "right") -> torch.Tensor:
    positions = torch.arange(width).unsqueeze(0)
    lengths_t = torch.as_tensor(lengths).unsqueeze(1)
    if side == "right":
        return (positions < lengths_t).long()
    return (positions >= width - lengths_t).long()


class CausalLMCollator:
    """Right-padded input_ids / attention_mask / labels for SFT and PTX batches."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("empty batch: the dataloader produced no examples")
        ids = [f["input_ids"] for f in features]
        input_ids = pad_sequences(ids, self.pad_token_id)
        return {
            "input_ids": input_ids,
            "attention_mask": length_mask([len(s) for s in ids], input_ids.shape[1]),
            "labels": pad_sequences([f["labels"] for f in features], IGNORE_INDEX),
        }
