"""One PPO rollout batch, and how a minibatch of it is cut into micro-batches without padding waste.

A batch is padded to its longest prompt (left) and longest response (right). A minibatch drawn
from it usually needs less: `trim_padding` drops the columns that are padding in every row, and
`length_sorted_micro_batches` groups rows of similar length so each micro-batch carries little
padding (gradient accumulation inside a minibatch: same gradient, less memory, less compute).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from rlhf.rl.shared_prompt import prompt_groups, real_prompts


@dataclass
class Experience:
    """One rollout batch with everything the updates need; [B, R] tensors are response tokens."""

    query_ids: torch.Tensor
    query_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    old_logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    rewards: torch.Tensor  # per-token: −β·KL_t, plus the score at the last valid token

    def rows(self, index: torch.Tensor) -> "Experience":
        return Experience(*(getattr(self, f.name)[index] for f in fields(self)))

    @property
    def n_rows(self) -> int:
        return self.response_ids.size(0)


QUERY_FIELDS = ("query_ids", "query_mask")


def trim_padding(exp: Experience) -> Experience:
    """Drop leading prompt columns and trailing response columns that are padding in every row.

    Prompts are left-padded and responses right-padded, so what is dropped never sits between
    real tokens; position ids come from the attention mask, so the kept tokens see the same
    positions and the forward gives the same numbers (up to kernel rounding).
    """
    query_real = exp.query_mask.bool().any(dim=0)
    first = int(query_real.nonzero()[0]) if bool(query_real.any()) else exp.query_mask.size(1)
    response_real = exp.response_mask.bool().any(dim=0)
    width = int(response_real.nonzero()[-1]) + 1 if bool(response_real.any()) else 0
    return Experience(*(getattr(exp, f.name)[:, first:] if f.name in QUERY_FIELDS else getattr(exp, f.name)[:, :width]
                        for f in fields(exp)))


def length_sorted_micro_batches(exp: Experience, size: int | None, by_prompt: bool = False) -> list[Experience]:
    """Rows sorted by real length (prompt + response) and cut into micro-batches of `size`, each
    trimmed of its own padding; size None/0 (or >= the rows) gives the whole minibatch, trimmed.
    by_prompt: rows of one prompt kept next to each other instead (the shared-prompt forward packs
    them, so padding is not the cost; a prompt cut in two is computed twice)."""
    rows = exp.n_rows
    if not size or size >= rows:
        return [trim_padding(exp)]
    if size < 0:
        raise ValueError(f"micro-batch size must be positive, got {size}")
    if by_prompt:
        groups = prompt_groups(real_prompts(exp.query_ids, exp.query_mask))
        order = torch.tensor([row for group in groups for row in group], device=exp.query_ids.device)
    else:
        lengths = exp.query_mask.sum(dim=1) + exp.response_mask.sum(dim=1)
        order = torch.argsort(lengths, stable=True)
    return [trim_padding(exp.rows(order[start:start + size])) for start in range(0, rows, size)]
