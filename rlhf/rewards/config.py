"""Typed settings of PPO's reward (`reward_fn=word_count|reward_model|crs`), one dataclass per kind;
each is the schema of its file in configs/reward_fn/."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlhf.core.schema import POSITIVE, REQUIRED, UNIT, setting

RM_OUTPUTS = ("logit", "prob")
CRS_NORMALIZE = ("none", "saved", "running")


@dataclass
class WordCountRewardConfig:
    kind: str = setting("word_count", choices=("word_count",))
    word: str = "e"
    """One letter by default: a random tiny model already emits it, so a test run learns it fast."""
    whole_word: bool = False
    """False counts substrings."""
    case_sensitive: bool = False
    weight: float = 1.0
    """Its weight when it is one part of a summed reward (a list of rewards)."""


@dataclass
class RewardModelRewardConfig:
    kind: str = setting("reward_model", choices=("reward_model",))
    path: str | None = REQUIRED
    """The reward stage's export dir (or its merged/ folder); the pipeline fills it in."""
    output: str = setting("logit", choices=RM_OUTPUTS)
    """thesis §5.4: PPO is rewarded with logits, not probabilities (docs/methods.md §3.9)."""
    batch_size: int = setting(16, **POSITIVE)
    weight: float = 1.0


@dataclass
class CRSRewardConfig:
    kind: str = setting("crs", choices=("crs",))
    w: float = setting(0.25, **UNIT)
    """Weight of the preference RM: thesis final choice 0.25 (swept 0.25…0.75)."""
    normalize: str = setting("none", choices=CRS_NORMALIZE)
    """none: the thesis mixes raw scores (docs/methods.md §8.3.9); saved | running standardise each part."""
    preference: RewardModelRewardConfig = field(default_factory=RewardModelRewardConfig)
    absolute: RewardModelRewardConfig = field(default_factory=RewardModelRewardConfig)
    """docs/methods.md §3.9: the sigmoid-trained absolute RM is queried as a logit."""
    weight: float = 1.0


KINDS: dict[str, Any] = {"word_count": WordCountRewardConfig, "reward_model": RewardModelRewardConfig,
                         "crs": CRSRewardConfig}
