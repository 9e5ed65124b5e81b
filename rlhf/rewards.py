"""Reward functions for PPO: closed-form rewards, the CRS combiner, and a builder from config.

Every reward follows the protocol of notes/CONTRACTS.md:
    score(prompts: list[list[dict]], responses: list[str]) -> float32 tensor [B] on CPU.
Reward models come from `rlhf.reward_model.load_reward_model` (imported lazily, so closed-form
rewards work without it).
"""

from __future__ import annotations

import re

import torch

from rlhf.advantages import combined_reward_score
from rlhf.errors import ConfigError
from rlhf.reward_normalization import RunningMeanStd

REWARD_KINDS = ("word_count", "reward_model", "crs", "sum")
NORMALIZE_MODES = ("none", "saved", "running")


class WordCountReward:
    """Occurrences of `word` in the response: a reward known in closed form, for tests and demos.

    whole_word=False counts substrings, e.g. one letter, which a near-uniform random policy
    already produces often enough to get a learning signal.
    """

    def __init__(self, word: str, whole_word: bool = True, case_sensitive: bool = False):
        if not word:
            raise ConfigError("reward.word", "must be a non-empty string")
        pattern = rf"\b{re.escape(word)}\b" if whole_word else re.escape(word)
        self.pattern = re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)

    def score(self, prompts: list[list[dict]], responses: list[str]) -> torch.Tensor:
        return torch.tensor([float(len(self.pattern.findall(r))) for r in responses], dtype=torch.float32)


class WeightedSumReward:
    """Σ_i w_i · s_i over several rewards (e.g. a gold reward plus a length penalty)."""

    def __init__(self, scorers: list, weights: list[float]):
        if len(scorers) != len(weights) or not scorers:
            raise ConfigError("reward.scorers", f"need one weight per scorer; got {len(scorers)} scorers, "
                                                f"{len(weights)} weights")
        self.scorers, self.weights = scorers, [float(w) for w in weights]

    def score(self, prompts, responses) -> torch.Tensor:
        return sum(w * s.score(prompts, responses).float() for s, w in zip(self.scorers, self.weights))


class CombinedReward:
    """Combined Reward Score CRS = w · pref + (1 − w) · abs (thesis §5.4, METHODS §4.3 step 2).

    normalize: "none"/False mixes raw scores, as the thesis did (METHODS §8.3.9); "saved"/True
    standardises each part with the stats its RM saved at training time (`scorer.stats`), falling
    back to running stats for a scorer without them; "running" always uses running mean/std.
    Running stats absorb a batch before normalising it and are per process.
    """

    def __init__(self, preference, absolute, w: float, normalize: bool | str = True):
        mode = {True: "saved", False: "none"}.get(normalize, normalize)
        if mode not in NORMALIZE_MODES:
            raise ConfigError("reward.normalize", f"unknown mode {normalize!r}; allowed: {NORMALIZE_MODES}")
        if not 0.0 <= float(w) <= 1.0:
            raise ConfigError("reward.w", f"must lie in [0, 1] (thesis final choice 0.25); got {w}")
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


def build_reward(cfg, device: str = "cpu"):
    """A reward from a `reward` config node: a dict with `kind`, or a list of them (weighted sum).

    kinds: word_count {word, whole_word, case_sensitive}; reward_model {path, output, batch_size};
    crs {preference, absolute, w, normalize}; sum {scorers: [spec + weight]}.
    """
    if isinstance(cfg, (list, tuple)):
        cfg = {"kind": "sum", "scorers": list(cfg)}
    cfg = dict(cfg)
    kind = cfg.get("kind")
    if kind == "word_count":
        return WordCountReward(cfg["word"], cfg.get("whole_word", True), cfg.get("case_sensitive", False))
    if kind == "reward_model":
        from rlhf.reward_model import load_reward_model

        if not cfg.get("path"):
            raise ConfigError("reward.path", "a reward_model reward needs the RM folder written by the reward stage")
        return load_reward_model(cfg["path"], output=cfg.get("output", "logit"), device=device,
                                 batch_size=int(cfg.get("batch_size", 16)))
    if kind == "crs":
        return CombinedReward(build_reward(cfg["preference"], device), build_reward(cfg["absolute"], device),
                              cfg.get("w", 0.25), cfg.get("normalize", "none"))
    if kind == "sum":
        specs = [dict(s) for s in cfg["scorers"]]
        return WeightedSumReward([build_reward(s, device) for s in specs], [s.get("weight", 1.0) for s in specs])
    raise ConfigError("reward.kind", f"unknown reward kind {kind!r}; allowed: {', '.join(REWARD_KINDS)}")
