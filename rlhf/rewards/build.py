"""PPO's reward from its config node (`reward=word_count|reward_model|crs`).

Every reward follows one protocol: score(prompts: list[list[dict]], responses: list[str]) -> float32
tensor [B] on CPU. Reward models are imported lazily, so closed-form rewards work without them.
"""

from __future__ import annotations

from rlhf.core.errors import ConfigError
from rlhf.rewards.crs import CombinedReward
from rlhf.rewards.weighted_sum import WeightedSumReward
from rlhf.rewards.word_count import WordCountReward

REWARD_KINDS = ("word_count", "reward_model", "crs", "sum")



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
        from rlhf.reward_model.scoring import load_reward_model

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
