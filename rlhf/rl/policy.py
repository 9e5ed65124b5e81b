"""The models one RL step reads: actor, reference, critic. A view over the module's registered
parts, so rollout, experience building and the update loop share one way to call them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rlhf.rl.critic import ValueModel, response_values
from rlhf.rl.rollout import forward_response


@dataclass
class PolicyModels:
    actor: nn.Module
    reference: nn.Module | None
    """A frozen copy under full fine-tuning; None under LoRA (the adapter-disabled actor)."""
    critic: ValueModel | None
    value_head: nn.Linear | None
    temperature: float

    @property
    def uses_value_head(self) -> bool:
        return self.value_head is not None

    @property
    def has_critic(self) -> bool:
        """False for the critic-free algorithms (critic.kind=none)."""
        return self.value_head is not None or self.critic is not None

    def logprobs(self, query_ids, query_mask, response_ids, response_mask, with_hidden: bool = False):
        """(log-probs [B,R], logits [B,R,V], hidden [B,R,H] | None) of the actor."""
        return forward_response(self.actor, query_ids, query_mask, response_ids, response_mask, self.temperature,
                                with_hidden=with_hidden)

    def reference_logprobs(self, query_ids, query_mask, response_ids, response_mask) -> torch.Tensor:
        if self.reference is None:
            with self.actor.disable_adapter():
                return forward_response(self.actor, query_ids, query_mask, response_ids, response_mask,
                                        self.temperature)[0]
        return forward_response(self.reference, query_ids, query_mask, response_ids, response_mask,
                                self.temperature)[0]

    def values(self, query_ids, query_mask, response_ids, response_mask, hidden) -> torch.Tensor:
        return response_values(self.critic, self.value_head, query_ids, query_mask, response_ids, response_mask,
                               hidden)
