"""Reward shaping: sequence score -> DAPO's overlong penalty -> never-ended penalty -> running
normalisation -> clip (docs/methods.md §4.3 steps 3-4: Qwen's running mean, the thesis's ±4 clip;
docs/algorithms.md §1.3 for the overlong penalty). The KL penalty per token is added when the
experience is built (rlhf/rl/experience_builder.py)."""

from __future__ import annotations

import torch

from rlhf.core.running_stats import RunningMeanStd
from rlhf.rl.config import AlgorithmConfig, RolloutConfig, ScoreConfig
from rlhf.rl.policy_objectives import overlong_penalty
from rlhf.rl.score_normalization import clip_scores


class ScoreShaper:
    """Holds the running score statistics (checkpointed with the run)."""

    def __init__(self, score: ScoreConfig, rollout: RolloutConfig, algorithm: AlgorithmConfig | None = None):
        self.cfg = score
        self.unfinished_penalty = rollout.unfinished_penalty
        self.stats = RunningMeanStd() if score.normalize else None
        algorithm = algorithm or AlgorithmConfig()
        fraction = algorithm.overlong_cache_fraction
        self.max_length = rollout.max_new_tokens
        self.overlong_cache = max(1, round(fraction * rollout.max_new_tokens)) if fraction else None
        self.overlong_factor = algorithm.overlong_penalty_factor

    def __call__(self, raw: torch.Tensor, ended: torch.Tensor, gather_rows, lengths: torch.Tensor | None = None,
                 update_stats: bool = True) -> torch.Tensor:
        """`gather_rows` stacks every rank's scores, so the running statistics are global; lengths =
        response tokens per row (for the overlong penalty); update_stats=False shapes a baseline
        (ReMax's greedy response) without counting it in the running statistics."""
        scores = raw
        if self.overlong_cache is not None:
            scores = scores + self.overlong_factor * overlong_penalty(lengths.to(raw.device), self.max_length,
                                                                      self.overlong_cache).to(raw.dtype)
        penalty = self.unfinished_penalty
        scores = scores - float(penalty) * (~ended).float() if penalty else scores
        if self.stats is not None:
            if update_stats:
                self.stats.update(gather_rows(scores))
            scores = self.stats.normalize(scores, subtract_mean=True, divide_std=self.cfg.divide_std)
        return clip_scores(scores, self.cfg.clip)

    def state_dict(self) -> dict | None:
        return self.stats.state_dict() if self.stats is not None else None

    def load_state_dict(self, state: dict | None) -> None:
        if self.stats is not None and state is not None:
            self.stats.load_state_dict(state)
