"""A trained reward model as annotator: lets a stronger RM label data for a weaker one, or stand in
for people when measuring RM agreement (METHODS.md §5.7)."""

from __future__ import annotations

import math
from collections.abc import Callable

from rlhf.annotators.base import check_prompt, ranks_from_scores
from rlhf.errors import ConfigError

OUTPUT_MODES = ("logit", "prob")


def sigmoid(x: float) -> float:
    """σ(x) = 1 / (1 + e^(−x)), written as (1 + tanh(x/2)) / 2 so large |x| cannot overflow."""
    return 0.5 * (1.0 + math.tanh(0.5 * x))


class RewardModelAnnotator:
    """Ranks by RM score (higher = better, equal scores tie).

    score: a callable `score(prompts, responses) -> list[float]` or an object with such a `.score`.
    output_mode: "logit" (the score is a logit; quality = σ(score)) or "prob" (already in [0, 1]),
    the two RM output modes of METHODS.md §3.9.
    """

    def __init__(self, score, name: str = "reward_model", output_mode: str = "logit"):
        score_fn: Callable = getattr(score, "score", score)
        if not callable(score_fn):
            raise ConfigError("annotator.score", f"need a callable score(prompts, responses) or an object with .score, got {score!r}")
        if output_mode not in OUTPUT_MODES:
            raise ConfigError("annotator.output_mode", f"got {output_mode!r}; expected one of {list(OUTPUT_MODES)}")
        self.score_fn = score_fn
        self.name = name
        self.output_mode = output_mode

    def scores(self, prompt: list[dict], responses: list[str]) -> list[float]:
        check_prompt(prompt)
        values = [float(v) for v in self.score_fn([prompt] * len(responses), list(responses))]
        if len(values) != len(responses):
            raise ValueError(f"reward model returned {len(values)} scores for {len(responses)} responses")
        return values

    def rank(self, prompt: list[dict], responses: list[str]) -> list[int]:
        return ranks_from_scores(self.scores(prompt, responses))

    def labels(self, prompt: list[dict], response: str) -> dict[str, float]:
        (value,) = self.scores(prompt, [response])
        if self.output_mode == "logit":
            return {"quality": sigmoid(value)}
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"output_mode='prob' but the reward model returned {value}, outside [0, 1]")
        return {"quality": value}
