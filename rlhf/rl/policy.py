"""The models one RL step reads: actor, reference, critic. A view over the module's registered
parts, so rollout, experience building and the update loop share one way to call them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rlhf.rl.critic import ValueModel, response_values
from rlhf.rl.rollout import forward_response
from rlhf.rl.shared_prompt import forward_response_shared


@dataclass
class PolicyModels:
    actor: nn.Module
    reference: nn.Module | None
    """A frozen copy under full fine-tuning; None under LoRA (the adapter-disabled actor)."""
    critic: ValueModel | None
    value_head: nn.Linear | None
    temperature: float
    shared_prompt: bool = False
    """Each prompt computed once for all its samples (shared_prompt.py); off = one row per sample."""
    pad_token_id: int = 0

    @property
    def uses_value_head(self) -> bool:
        return self.value_head is not None

    @property
    def has_critic(self) -> bool:
        """False for the critic-free algorithms (critic.kind=none)."""
        return self.value_head is not None or self.critic is not None

    def _forward(self, model, query_ids, query_mask, response_ids, response_mask, with_hidden: bool = False,
                 with_logits: bool = True):
        if self.shared_prompt:
            return forward_response_shared(model, query_ids, query_mask, response_ids, response_mask, self.temperature,
                                           with_hidden=with_hidden, with_logits=with_logits,
                                           pad_token_id=self.pad_token_id)
        return forward_response(model, query_ids, query_mask, response_ids, response_mask, self.temperature,
                                with_hidden=with_hidden)

    def logprobs(self, query_ids, query_mask, response_ids, response_mask, with_hidden: bool = False,
                 with_logits: bool = True):
        """(log-probs [B,R], logits [B,R,V] | None, hidden [B,R,H] | None) of the actor; with_logits=False
        lets the shared-prompt forward skip the [B, R, V] tensor (the plain one returns it anyway)."""
        return self._forward(self.actor, query_ids, query_mask, response_ids, response_mask, with_hidden, with_logits)

    def reference_logprobs(self, query_ids, query_mask, response_ids, response_mask) -> torch.Tensor:
        if self.reference is None:
            with self.actor.disable_adapter():
                return self._forward(self.actor, query_ids, query_mask, response_ids, response_mask,
                                     with_logits=False)[0]
        return self._forward(self.reference, query_ids, query_mask, response_ids, response_mask, with_logits=False)[0]

    def values(self, query_ids, query_mask, response_ids, response_mask, hidden) -> torch.Tensor:
        return response_values(self.critic, self.value_head, query_ids, query_mask, response_ids, response_mask,
                               hidden)
