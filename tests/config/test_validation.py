"""validate_config on configs composed exactly as `python -m rlhf.train` composes them."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from rlhf.config.validation import validate_config
from rlhf.core.errors import ConfigError
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))  # tests_conf lives there
from tests_conf import CONFIG_DIR  # noqa: E402

SFT = ["model=tiny", "data=alpaca", "logger=csv"]


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[*SFT, *overrides])


@pytest.mark.parametrize("overrides", [
    [], ["stage=ppo", "data=prompts_demo"], ["stage=reward", "data=hh_rlhf_pairs"],
    ["trainer=gpu", "strategy=fsdp2", "logger=many", "peft=none"],
])
def test_shipped_configs_pass(overrides):
    validate_config(composed(*overrides))


@pytest.mark.parametrize("override, key, message", [
    # unknown keys: Hydra lets `+` additions through; each names the full path and the allowed keys
    ("+lr=0.1", "lr", r"unknown key for the top level; allowed: \[.*'seed'"),
    ("+trainer.max_stpes=3", "trainer.max_stpes", r"lightning.pytorch.Trainer \(did you mean 'max_steps'\?\)"),
    ("+callbacks.kl_ceiling.cieling=3", "callbacks.kl_ceiling.cieling", r"did you mean 'ceiling'"),
    ("+model.sorce=x", "model.sorce", r"unknown key for ModelConfig \(did you mean 'source'\?\); allowed: \['cache_dir'"),
    ("+stage.module.optim.learning_rate=1", "stage.module.optim.learning_rate", r"allowed: \['betas', 'eps'"),
    # wrong types, judged from the target's annotations
    ("trainer.max_steps=abc", "trainer.max_steps", r"expects int, got str 'abc'"),
    # out of range
    ("stage.module.optim.lr=-1e-4", "stage.module.optim.lr", r"must be a number >= 0, got -0.0001"),
    ("peft.dropout=1.0", "peft.dropout", r"must be a number >= 0 and < 1, got 1.0"),
    ("peft.r=0", "peft.r", r"must be an integer >= 1"),
    ("data.batch_size=0", "data.batch_size", r"must be an integer >= 1"),
    ("data.val_fraction=-0.1", "data.val_fraction", r"got -0.1"),
    ("stage.module.optim.betas=[0.9,1.5]", "stage.module.optim.betas", r"a list of 2 numbers in \[0, 1\)"),
    ("stage.module.optim.schedule=cosin", "stage.module.optim.schedule", r"'cosin' is not allowed; allowed: \['cosine'"),
    ("model.dtype=float33", "model.dtype", r"allowed: \['float32'"),
    ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val", r"got -1"),
    ("seed=1.5", "seed", r"must be an integer"),
    # a required value left unset
    ("data=jsonl", "data.sources.0.path", r"required but not set"),
])
def test_each_bad_config_names_its_key(override, key, message):
    with pytest.raises(ConfigError, match=message) as caught:
        validate_config(composed(override))
    assert caught.value.key == key


@pytest.mark.parametrize("override, key", [
    ("stage.module.update.clip_eps=0", "stage.module.update.clip_eps"),
    ("stage.module.update.gamma=1.2", "stage.module.update.gamma"),
    ("stage.module.rollout.top_p=0", "stage.module.rollout.top_p"),
    ("stage.module.rollout.temperature=-1", "stage.module.rollout.temperature"),
    ("+stage.module.rolout={}", "stage.module.rolout"),
])
def test_ppo_ranges(override, key):
    with pytest.raises(ConfigError) as caught:
        validate_config(composed("stage=ppo", "data=prompts_demo", override))
    assert caught.value.key == key


def composed_as_run(tmp_path, *overrides: str):
    """Composed with the hydra node set, as inside a run, so `${paths.data_dir}` (which reads
    `${hydra:runtime.cwd}`) resolves and the sources that use it are checked too."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*SFT, *overrides], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


REWARD = ["stage=reward", "data=hh_rlhf_pairs"]
ABSOLUTE = ["stage=reward_absolute", "data=absolute_jsonl", "data.sources.0.path=labels.jsonl"]
PPO = ["stage=ppo", "data=prompts_demo"]


@pytest.mark.parametrize("overrides, key, message", [
    # a typo at each depth of the typed sections: the full key path, a suggestion, the allowed keys
    (["+stage.module.optim.lrr=1"], "stage.module.optim.lrr",
     r"OptimConfig \(did you mean 'lr'\?\); allowed: \['betas', 'eps', 'grad_clip', 'lr', 'schedule'"),
    ([*REWARD, "+stage.module.loss.marginn=1"], "stage.module.loss.marginn",
     r"PairwiseLogisticLossConfig \(did you mean 'margin'\?\); allowed: \['center_coef', 'group_mean', 'margin', 'name'\]"),
    ([*REWARD, "reward_loss@stage.module.loss=mse", "+stage.module.loss.center_coef=1"], "stage.module.loss.center_coef",
     r"MSELossConfig \(did you mean 'penalty_coef'\?\); allowed: \['name', 'penalty_coef'\]"),
    (["+data.batch_sizee=1"], "data.batch_sizee", r"SFTDataConfig \(did you mean 'batch_size'\?\); allowed: \[.*'val_fraction'\]"),
    ([*REWARD, "+data.pairz=all_pairs"], "data.pairz", r"PreferenceDataConfig \(did you mean 'pairs'\?\)"),
    (["+data.sources.0.adaptr=alpaca"], "data.sources.0.adaptr",
     r"SourceConfig \(did you mean 'adapter'\?\); allowed: \['adapter', 'builtin', 'fields'"),
    ([*ABSOLUTE, "+data.sources.0.limt=3"], "data.sources.0.limt",
     r"AbsoluteSourceConfig \(did you mean 'limit'\?\); allowed: \['limit', 'path', 'split'\]"),
    ([*PPO, "data.ptx={sources: [{builtin: demo, nn: 3}]}"], "data.ptx.sources.0.nn",
     r"SourceConfig \(did you mean 'n'\?\); allowed: \['adapter'"),
    # out of range: the range is named
    (["data.batch_size=0"], "data.batch_size", r"must be an integer >= 1, got 0"),
    (["stage.module.optim.lr=-1"], "stage.module.optim.lr", r"must be a number >= 0, got -1"),
    ([*REWARD, "stage.module.loss.margin=-1"], "stage.module.loss.margin", r"must be a number >= 0, got -1"),
    ([*REWARD, "data.rank_gap_margin=-1"], "data.rank_gap_margin", r"must be a number >= 0, got -1"),
    ([*PPO, "data.max_prompt_tokens=0"], "data.max_prompt_tokens", r"must be an integer >= 1 \(or null\), got 0"),
    (["data.sources.0.limit=0"], "data.sources.0.limit", r"must be an integer >= 1 \(or null\), got 0"),
])
def test_typed_stage_and_data_sections_name_the_full_key(tmp_path, overrides, key, message):
    with pytest.raises(ConfigError, match=message) as caught:
        validate_config(composed_as_run(tmp_path, *overrides))
    assert caught.value.key == key
