"""The critic: a separate value model or a scalar head on the actor's backbone (docs/methods.md §4.1).

Both are built here and read V(s_t) at the positions that predict each response token. New heads
start at 0, so V = 0 before the first update.
"""

from __future__ import annotations

import torch
from torch import nn

from rlhf.core.models import load_sequence_classifier
from rlhf.rl.config import CriticConfig
from rlhf.rl.rollout import position_ids


class ValueModel(nn.Module):
    """A separate critic: an HF *ForSequenceClassification body with its scalar head read at every
    token; saves as a loadable HF folder."""

    def __init__(self, seq_cls):
        super().__init__()
        self.seq_cls = seq_cls

    def forward(self, input_ids, attention_mask, position_ids):
        hidden = self.seq_cls.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                         position_ids=position_ids, use_cache=False).last_hidden_state
        return self.seq_cls.score(hidden).squeeze(-1).float()


def _zero_head(head: nn.Linear) -> None:
    nn.init.zeros_(head.weight)
    if head.bias is not None:
        nn.init.zeros_(head.bias)


def value_head(hidden_size: int, dtype: torch.dtype) -> nn.Linear:
    head = nn.Linear(hidden_size, 1, dtype=dtype)
    _zero_head(head)
    return head


def separate_critic(cfg: CriticConfig, actor_base: nn.Module, seed: int) -> ValueModel:
    """`path` = an RM folder (keeps its head) or an SFT/causal-LM folder (new head); no path = the
    actor's own backbone weights with a new head. New heads start at 0."""
    source = actor_base
    if cfg.path:
        from rlhf.reward_model.scoring import resolve_model_dir

        source = resolve_model_dir(cfg.path)
    seq_cls = load_sequence_classifier(source, actor_base.dtype, seed=seed, zero_new_head=True)
    seq_cls.config.pad_token_id = actor_base.config.pad_token_id
    return ValueModel(seq_cls)


def response_values(critic: ValueModel | None, head: nn.Linear | None, query_ids, query_mask, response_ids,
                    response_mask, hidden) -> torch.Tensor:
    """V at each response position [B, R]: the head on the actor's hidden states, or one critic
    forward over prompt + response."""
    if head is not None:
        return head(hidden).squeeze(-1).float()
    input_ids = torch.cat([query_ids, response_ids], dim=1)
    attention = torch.cat([query_mask, response_mask], dim=1).long()
    values = critic(input_ids, attention, position_ids(attention))
    n = response_ids.size(1)
    return values[:, -n - 1:-1]
