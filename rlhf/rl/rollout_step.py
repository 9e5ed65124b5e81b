"""One rollout of a prompt batch: n samples per prompt, left-padded queries, counter-based seeds
(the same sample for a prompt however the batch is split over ranks or resumed)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlhf.data.prompt_encoding import left_pad
from rlhf.rl.config import RolloutConfig
from rlhf.rl.rollout import Generation, generate, sample_seeds


@dataclass
class Rollout:
    prompts: list
    """The chat prompt of each response (each prompt repeated n times)."""
    query_ids: torch.Tensor
    query_mask: torch.Tensor
    generation: Generation
    texts: list[str]
    """Decoded responses without the EOS token."""


def roll_out(actor, tokenizer, batch: dict, iteration: int, seed: int, cfg: RolloutConfig, device,
             fixed_length: bool, with_hidden: bool) -> Rollout:
    """fixed_length: FSDP2 ranks must call forward in lockstep, so every rank runs all steps."""
    n = cfg.n_samples_per_prompt
    prompts = [p for p in batch["prompts"] for _ in range(n)]
    query_ids, query_mask = left_pad([ids for ids in batch["input_ids"] for _ in range(n)], tokenizer.pad_token_id)
    seeds = sample_seeds(seed, iteration, batch["ids"], n)
    query_ids, query_mask, seeds = query_ids.to(device), query_mask.to(device), seeds.to(device)
    generation = generate(
        actor, query_ids, query_mask, seeds, eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id,
        max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p,
        fixed_length=fixed_length, with_hidden=with_hidden)
    texts = response_texts(tokenizer, generation.response_ids, generation.response_mask, generation.ended)
    return Rollout(prompts, query_ids, query_mask, generation, texts)


def response_texts(tokenizer, response_ids: torch.Tensor, mask: torch.Tensor, ended: torch.Tensor) -> list[str]:
    lengths = (mask.sum(1) - ended.long()).tolist()  # drop the EOS itself
    rows = response_ids.tolist()
    return [tokenizer.decode(row[:n], skip_special_tokens=True) for row, n in zip(rows, lengths)]
