"""A trained reward model as annotator: lets a stronger RM label data for a weaker one, or stand in
for people when measuring RM agreement (docs/methods.md §5.7)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from rlhf.annotators.base import check_prompt, ranks_from_scores
from rlhf.core.errors import ConfigError

OUTPUT_MODES = ("logit", "prob")


def sigmoid(x: float) -> float:
    """σ(x) = 1 / (1 + e^(−x)), written as (1 + tanh(x/2)) / 2 so large |x| cannot overflow."""
    return 0.5 * (1.0 + math.tanh(0.5 * x))


class RewardModelAnnotator:
    """Ranks by RM score (higher = better, equal scores tie).

    score: an object with `.score(prompts, responses)` (the reward protocol of rlhf/rewards/build.py,
    e.g. rlhf.reward_model.scoring.RewardScorer) or such a callable; tensors and lists both work.
    output_mode: "logit" (quality label = σ(score)) or "prob" (score already in [0, 1]), the two RM
    output modes of docs/methods.md §3.9; by default the scorer's own `.output`, else "logit".
    """

    def __init__(self, score, name: str = "reward_model", output_mode: str | None = None):
        score_fn: Callable = getattr(score, "score", score)
        if not callable(score_fn):
            raise ConfigError("annotator.score", f"need a callable score(prompts, responses) or an object with .score, got {score!r}")
        output_mode = output_mode or getattr(score, "output", "logit")
        if output_mode not in OUTPUT_MODES:
            raise ConfigError("annotator.output_mode", f"got {output_mode!r}; expected one of {list(OUTPUT_MODES)}")
        self.score_fn = score_fn
        self.name = name
        self.output_mode = output_mode

    @classmethod
    def from_path(cls, path: str | Path, output: str = "logit", batch_size: int = 16, device: str = "cpu"):
        """An exported RM folder (configs/annotator/reward_model.yaml)."""
        from rlhf.reward_model.scoring import load_reward_model

        scorer = load_reward_model(path, output=output, device=device, batch_size=batch_size)
        return cls(scorer, name=f"reward_model:{Path(path).name}", output_mode=output)

    def scores(self, prompt: list[dict], responses: list[str]) -> list[float]:
        """All K responses of one prompt in one score() call."""
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
