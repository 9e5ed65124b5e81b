"""PPO's reward from its config node (`reward_fn=word_count|reward_model|crs`, or a list of them).

Every reward follows one protocol: score(prompts: list[list[dict]], responses: list[str]) -> float32
tensor [B] on CPU. Reward models are imported lazily, so closed-form rewards work without them.
"""

from __future__ import annotations

from collections.abc import Mapping

from rlhf.core.errors import ConfigError
from rlhf.core.schema import as_config
from rlhf.rewards.config import KINDS, CRSRewardConfig, RewardModelRewardConfig, WordCountRewardConfig
from rlhf.rewards.crs import CombinedReward
from rlhf.rewards.weighted_sum import WeightedSumReward
from rlhf.rewards.word_count import WordCountReward

KEY = "reward_fn"


def reward_config(cfg, key: str = KEY):
    """The typed config of one reward node, picked by its `kind`."""
    if not isinstance(cfg, Mapping):
        return cfg
    kind = cfg.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{key}.kind", f"unknown reward kind {kind!r}; allowed: {', '.join(KINDS)} "
                                         "(or a list of them for a weighted sum)")
    return as_config(KINDS[kind], cfg, key)


def build_reward(cfg, device: str = "cpu", key: str = KEY):
    """A reward from a `reward_fn` config node: one reward, or a list of them (a weighted sum)."""
    if isinstance(cfg, (list, tuple)):
        if not cfg:
            raise ConfigError(key, "an empty list of rewards")
        parts = [reward_config(c, f"{key}.{i}") for i, c in enumerate(cfg)]
        return WeightedSumReward([build_reward(p, device, f"{key}.{i}") for i, p in enumerate(parts)],
                                 [p.weight for p in parts])
    cfg = reward_config(cfg, key)
    if isinstance(cfg, WordCountRewardConfig):
        return WordCountReward(cfg.word, cfg.whole_word, cfg.case_sensitive)
    if isinstance(cfg, RewardModelRewardConfig):
        from rlhf.reward_model.scoring import load_reward_model

        if not cfg.path:
            raise ConfigError(f"{key}.path", "a reward_model reward needs the RM folder written by the reward stage")
        return load_reward_model(cfg.path, output=cfg.output, device=device, batch_size=cfg.batch_size)
    if isinstance(cfg, CRSRewardConfig):
        return CombinedReward(build_reward(cfg.preference, device, f"{key}.preference"),
                              build_reward(cfg.absolute, device, f"{key}.absolute"), cfg.w, cfg.normalize)
    raise ConfigError(f"{key}.kind", f"unknown reward config {type(cfg).__name__}")
