"""Several rewards as one: a weighted sum."""

from __future__ import annotations

import torch

from rlhf.core.errors import ConfigError


class WeightedSumReward:
    """Σ_i w_i · s_i over several rewards (e.g. a gold reward plus a length penalty)."""

    def __init__(self, scorers: list, weights: list[float]):
        if len(scorers) != len(weights) or not scorers:
            raise ConfigError("reward_fn.scorers", f"need one weight per scorer; got {len(scorers)} scorers, "
                                                f"{len(weights)} weights")
        self.scorers, self.weights = scorers, [float(w) for w in weights]

    def score(self, prompts, responses) -> torch.Tensor:
        return sum(w * s.score(prompts, responses).float() for s, w in zip(self.scorers, self.weights))
