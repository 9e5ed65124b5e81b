"""Reward shaping: sequence score -> never-ended penalty -> running normalisation -> clip
(docs/methods.md §4.3 steps 3-4: Qwen's running mean, the thesis's ±4 clip). The KL penalty per
token is added when the experience is built (rlhf/rl/experience_builder.py)."""

from __future__ import annotations

import torch

from rlhf.core.running_stats import RunningMeanStd
from rlhf.rl.config import RolloutConfig, ScoreConfig
from rlhf.rl.score_normalization import clip_scores


class ScoreShaper:
    """Holds the running score statistics (checkpointed with the run)."""

    def __init__(self, score: ScoreConfig, rollout: RolloutConfig):
        self.cfg = score
        self.unfinished_penalty = rollout.unfinished_penalty
        self.stats = RunningMeanStd() if score.normalize else None

    def __call__(self, raw: torch.Tensor, ended: torch.Tensor, gather_rows) -> torch.Tensor:
        """`gather_rows` stacks every rank's scores, so the running statistics are global."""
        penalty = self.unfinished_penalty
        scores = raw - float(penalty) * (~ended).float() if penalty else raw
        if self.stats is not None:
            self.stats.update(gather_rows(scores))
            scores = self.stats.normalize(scores, subtract_mean=True, divide_std=self.cfg.divide_std)
        return clip_scores(scores, self.cfg.clip)

    def state_dict(self) -> dict | None:
        return self.stats.state_dict() if self.stats is not None else None

    def load_state_dict(self, state: dict | None) -> None:
        if self.stats is not None and state is not None:
            self.stats.load_state_dict(state)
