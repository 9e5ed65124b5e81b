"""Start-up checks of the RL algorithm (rlhf.rl.config.algorithm_problems): every shipped
algorithm validates, and a combination that cannot run stops before any model loads, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from rlhf.config.validation import validate_config
from rlhf.core.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
ALGORITHMS = sorted(p.stem for p in (CONFIG_DIR / "algorithm").glob("*.yaml"))
BASE = ["model=tiny", "logger=csv", "stage=ppo", "data=prompts_demo"]
M = "stage.module"


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[*BASE, *overrides])


def test_the_shipped_algorithms_are_the_documented_ones():
    assert ALGORITHMS == ["dapo", "dr_grpo", "grpo", "gspo", "ppo", "reinforce_pp", "reinforce_pp_baseline",
                          "remax", "rloo"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_shipped_algorithm_validates(algorithm):
    cfg = composed(f"algorithm={algorithm}")
    validate_config(cfg)
    assert cfg.stage.module.algorithm.name == algorithm


def test_without_an_algorithm_the_stage_is_todays_ppo():
    cfg = composed()
    validate_config(cfg)
    assert "algorithm" not in cfg.stage.module or cfg.stage.module.algorithm.advantage == "gae"
    assert cfg.stage.module.critic.kind == "separate"


@pytest.mark.parametrize("overrides, key, words", [
    (["algorithm=grpo", f"{M}.rollout.n_samples_per_prompt=1"], f"{M}.rollout.n_samples_per_prompt", "needs >= 2"),
    (["algorithm=rloo", f"{M}.rollout.n_samples_per_prompt=1"], f"{M}.rollout.n_samples_per_prompt", "needs >= 2"),
    (["algorithm=grpo", f"{M}.update.minibatch_size=6"], f"{M}.update.minibatch_size", "whole groups"),
    (["algorithm=remax", f"{M}.rollout.top_k=1"], f"{M}.rollout.top_k", "greedy"),
    ([f"{M}.critic.kind=none"], f"{M}.critic.kind", "needs a critic"),
    (["algorithm=grpo", f"{M}.critic.kind=value_head"], f"{M}.critic.kind", "critic.kind=none"),
    (["algorithm=dapo", f"{M}.algorithm.clip_high=0.1"], f"{M}.algorithm.clip_high", "ε_high=0.1 < ε_low=0.2"),
    (["algorithm=reinforce_pp", f"{M}.algorithm.dynamic_sampling=true"], f"{M}.algorithm.dynamic_sampling",
     "group advantage"),
    (["algorithm=reinforce_pp", f"{M}.algorithm.policy_loss=gspo"], f"{M}.algorithm.policy_loss", "gspo_token"),
    (["algorithm=grpo", f"{M}.update.critic_warmup_steps=5"], f"{M}.update.critic_warmup_steps", "no critic"),
])
def test_a_combination_that_cannot_run_is_named(overrides, key, words):
    with pytest.raises(ConfigError) as caught:
        validate_config(composed(*overrides))
    assert caught.value.key == key
    assert words in str(caught.value)


@pytest.mark.parametrize("override, key", [
    (f"{M}.algorithm.advantage=gea", f"{M}.algorithm.advantage"),
    (f"{M}.algorithm.dual_clip=0.5", f"{M}.algorithm.dual_clip"),
    (f"{M}.algorithm.loss_aggregation=mean", f"{M}.algorithm.loss_aggregation"),
    (f"+{M}.algorithm.clip_hihg=0.3", f"{M}.algorithm.clip_hihg"),
])
def test_a_bad_algorithm_key_or_value_is_named(override, key):
    with pytest.raises(Exception) as caught:
        validate_config(composed("algorithm=grpo", override))
    assert key.rsplit(".", 1)[-1] in str(caught.value)


def test_algorithm_on_a_stage_without_rl_is_refused():
    with pytest.raises(Exception) as caught:
        validate_config(compose_sft("algorithm=grpo"))
    assert "algorithm" in str(caught.value)


def compose_sft(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=["model=tiny", "logger=csv", "stage=sft", *overrides])
