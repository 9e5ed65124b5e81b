"""Combined Reward Score: a preference RM and an absolute RM mixed into one PPO reward
(thesis §5.4; docs/methods.md §4.3 step 2, §3.9)."""

from __future__ import annotations

import torch

from rlhf.core.errors import ConfigError
from rlhf.core.running_stats import RunningMeanStd

NORMALIZE_MODES = ("none", "saved", "running")


def combined_reward_score(pref: torch.Tensor, abs_: torch.Tensor, w: float) -> torch.Tensor:
    """CRS = w · s_pref + (1 − w) · s_abs, w ∈ [0, 1] (thesis §5.4; docs/methods.md §4.3
    step 2). Raw scores are mixed as in the seed; w = 1 is preference-only, w = 0 absolute-only."""
    if not 0.0 <= w <= 1.0:
        raise ConfigError("reward_fn.w", f"must lie in [0, 1] (thesis final choice 0.25); got {w}")
    if pref.shape != abs_.shape:
        raise ValueError(
            f"preference and absolute scores must have the same shape; got {tuple(pref.shape)} "
            f"and {tuple(abs_.shape)}"
        )
    return w * pref + (1.0 - w) * abs_


def logit_from_probability(p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """z = log(p / (1 − p)), with p clamped to [ε, 1 − ε] so 0 and 1 stay finite.

    The absolute RM is trained through a sigmoid but rewards PPO with its logit, which kept
    response length stable (thesis §5.4; docs/methods.md §3.9).
    """
    if bool(((p < 0) | (p > 1)).any()):
        raise ValueError(
            f"probabilities must lie in [0, 1]; got values in [{float(p.min())}, {float(p.max())}] "
            "(was a logit passed where a probability was expected?)"
        )
    clamped = p.clamp(eps, 1.0 - eps)
    return torch.log(clamped) - torch.log1p(-clamped)


class CombinedReward:
    """Combined Reward Score CRS = w · pref + (1 − w) · abs (thesis §5.4, docs/methods.md §4.3 step 2).

    normalize: "none"/False mixes raw scores, as the thesis did (docs/methods.md §8.3.9); "saved"/True
    standardises each part with the stats its RM saved at training time (`scorer.stats`), falling
    back to running stats for a scorer without them; "running" always uses running mean/std.
    Running stats absorb a batch before normalising it and are per process.
    """

    def __init__(self, preference, absolute, w: float, normalize: bool | str = True):
        mode = {True: "saved", False: "none"}.get(normalize, normalize)
        if mode not in NORMALIZE_MODES:
            raise ConfigError("reward_fn.normalize", f"unknown mode {normalize!r}; allowed: {NORMALIZE_MODES}")
        if not 0.0 <= float(w) <= 1.0:
            raise ConfigError("reward_fn.w", f"must lie in [0, 1] (thesis final choice 0.25); got {w}")
        self.parts = {"preference": preference, "absolute": absolute}
        self.w = float(w)
        self.mode = mode
        self.running = {name: RunningMeanStd() for name in self.parts}

    def _saved_stats(self, scorer) -> tuple[float, float] | None:
        stats = getattr(scorer, "stats", None)
        if self.mode != "saved" or not stats or not float(stats.get("std") or 0.0) > 0:
            return None
        return float(stats["mean"]), float(stats["std"])

    def _normalise(self, name: str, scores: torch.Tensor) -> torch.Tensor:
        if self.mode == "none":
            return scores
        saved = self._saved_stats(self.parts[name])
        if saved is not None:
            return (scores - saved[0]) / saved[1]
        stats = self.running[name]
        stats.update(scores)
        return stats.normalize(scores, subtract_mean=True, divide_std=stats.std > 0)

    def score(self, prompts, responses) -> torch.Tensor:
        parts = {name: self._normalise(name, s.score(prompts, responses).float()) for name, s in self.parts.items()}
        return combined_reward_score(parts["preference"], parts["absolute"], self.w)

    def state_dict(self) -> dict:
        return {name: stats.state_dict() for name, stats in self.running.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, stats in self.running.items():
            stats.load_state_dict(state[name])
