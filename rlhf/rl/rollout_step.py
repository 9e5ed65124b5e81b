"""One rollout of a prompt batch: n samples per prompt, left-padded queries, counter-based seeds
(the same sample for a prompt however the batch is split over ranks or resumed)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import nn

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
    metadata: list[dict] = field(default_factory=list)
    """Each response's prompt metadata (reference answer, ids, ...), repeated n times like the prompts."""

    @property
    def n_rows(self) -> int:
        return len(self.texts)


def roll_out(actor, tokenizer, batch: dict, iteration: int, seed: int, cfg: RolloutConfig, device,
             fixed_length: bool, with_hidden: bool) -> Rollout:
    """fixed_length: FSDP2 ranks must call forward in lockstep, so every rank runs all steps."""
    n = cfg.n_samples_per_prompt
    prompts = [p for p in batch["prompts"] for _ in range(n)]
    metadata = [dict(m) for m in batch.get("metadata") or [{"id": i} for i in batch["ids"]] for _ in range(n)]
    query_ids, query_mask = left_pad([ids for ids in batch["input_ids"] for _ in range(n)], tokenizer.pad_token_id)
    seeds = sample_seeds(seed, iteration, batch["ids"], n)
    query_ids, query_mask, seeds = query_ids.to(device), query_mask.to(device), seeds.to(device)
    generation = generate(
        actor, query_ids, query_mask, seeds, eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id,
        max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p,
        fixed_length=fixed_length, with_hidden=with_hidden)
    texts = response_texts(tokenizer, generation.response_ids, generation.response_mask, generation.ended)
    return Rollout(prompts, query_ids, query_mask, generation, texts, metadata)


def response_texts(tokenizer, response_ids: torch.Tensor, mask: torch.Tensor, ended: torch.Tensor) -> list[str]:
    lengths = (mask.sum(1) - ended.long()).tolist()  # drop the EOS itself
    rows = response_ids.tolist()
    return [tokenizer.decode(row[:n], skip_special_tokens=True) for row, n in zip(rows, lengths)]


def _pad_to(x: torch.Tensor, width: int, left: bool, value=0) -> torch.Tensor:
    extra = width - x.size(1)
    if extra == 0:
        return x
    pad = (0, 0, extra, 0) if x.dim() == 3 and left else (0, 0, 0, extra) if x.dim() == 3 else \
        (extra, 0) if left else (0, extra)
    return nn.functional.pad(x, pad, value=value)


def concat_rollouts(parts: list[Rollout], pad_id: int) -> Rollout:
    """One rollout from several (dynamic sampling's refills): prompts re-left-padded, responses
    re-right-padded to the widest part; the padding added is masked out, as generate's own."""
    if len(parts) == 1:
        return parts[0]
    q_width = max(p.query_ids.size(1) for p in parts)
    r_width = max(p.generation.response_ids.size(1) for p in parts)
    gen_parts = [p.generation for p in parts]
    generation = type(gen_parts[0])(**{
        f.name: None if getattr(gen_parts[0], f.name) is None else torch.cat([
            getattr(g, f.name) if getattr(g, f.name).dim() == 1 else
            _pad_to(getattr(g, f.name), r_width, left=False, value=pad_id if f.name == "response_ids" else 0)
            for g in gen_parts]) for f in fields(gen_parts[0])})
    return Rollout(
        [x for p in parts for x in p.prompts],
        torch.cat([_pad_to(p.query_ids, q_width, left=True, value=pad_id) for p in parts]),
        torch.cat([_pad_to(p.query_mask, q_width, left=True) for p in parts]),
        generation, [x for p in parts for x in p.texts], [x for p in parts for x in p.metadata])


def select_rows(rollout: Rollout, rows: list[int]) -> Rollout:
    index = torch.tensor(rows, dtype=torch.long, device=rollout.query_ids.device)
    g = rollout.generation
    generation = type(g)(**{f.name: None if getattr(g, f.name) is None else getattr(g, f.name)[index]
                            for f in fields(g)})
    return Rollout([rollout.prompts[i] for i in rows], rollout.query_ids[index], rollout.query_mask[index],
                   generation, [rollout.texts[i] for i in rows], [rollout.metadata[i] for i in rows])
