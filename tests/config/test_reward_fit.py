"""Start-up checks of PPO's reward: the shipped reward_fn options validate, a misspelt key of a
reward is named, and a metadata field the reward reads but the data does not provide stops the run
before any model loads, naming the field and the data source."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from rlhf.config.validation import validate_config
from rlhf.core.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))  # tests_conf lives there
from tests_conf import CONFIG_DIR  # noqa: E402

BASE = ["model=tiny", "logger=csv", "stage=ppo"]
TARGET_REWARDS = sorted(p.stem for p in (CONFIG_DIR / "reward_fn").glob("*.yaml")
                        if "defaults" not in p.read_text())


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[*BASE, *overrides])


@pytest.mark.parametrize("reward", TARGET_REWARDS)
def test_every_target_reward_validates_on_the_arithmetic_task(reward):
    validate_config(composed("data=arithmetic", f"reward_fn={reward}"))


def test_a_reward_that_needs_an_answer_on_prompts_without_one_stops_naming_field_and_source():
    with pytest.raises(ConfigError) as caught:
        validate_config(composed("data=prompts_demo", "reward_fn=math_answer"))
    assert caught.value.key == "data.sources.0.metadata_fields"
    message = str(caught.value)
    assert "reward_fn.fn reads the metadata field 'answer'" in message and "builtin demo" in message
    assert "data.sources.0.metadata_fields.answer=<field name in the source>" in message


def test_a_mapped_field_satisfies_the_reward_and_a_renamed_field_is_followed():
    jsonl = ["data=prompts_jsonl", "data.sources.0.path=questions.jsonl"]
    validate_config(composed(*jsonl, "reward_fn=math_answer", "+data.sources.0.metadata_fields={answer: gold}"))
    validate_config(composed("data=gsm8k_prompts", "reward_fn=math_answer"))
    with pytest.raises(ConfigError, match="metadata field 'gold'"):
        validate_config(composed(*jsonl, "reward_fn=math_answer", "reward_fn.fn.field=gold",
                                 "+data.sources.0.metadata_fields={answer: gold}"))
    # a weighted sum: the part that reads the field is named by its path
    with pytest.raises(ConfigError, match=r"reward_fn.combine.0.fn reads the metadata field 'answer'"):
        validate_config(composed("data=prompts_demo", "reward_fn=math_format_length"))


def test_rewards_without_metadata_fit_any_prompts():
    for reward in ("word_count", "format", "length_penalty"):
        validate_config(composed("data=prompts_demo", f"reward_fn={reward}"))


def test_a_misspelt_reward_key_is_named():
    with pytest.raises(ConfigError) as caught:
        validate_config(composed("data=arithmetic", "reward_fn=math_answer", "+reward_fn.fn.feild=answer"))
    assert caught.value.key == "reward_fn.fn.feild"
    with pytest.raises(ConfigError) as caught:
        validate_config(composed("data=arithmetic", "reward_fn=math_answer", "+reward_fn.wieght=2"))
    assert caught.value.key == "reward_fn.wieght"
