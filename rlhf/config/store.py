"""Registers each typed config section in Hydra's ConfigStore as the schema of its YAML group.

A group file names its schema first in its defaults list (`- schema` in configs/model/*.yaml,
`- ppo_schema` in configs/stage/ppo.yaml), so Hydra merges the YAML onto the dataclass: the
defaults come from the dataclass, and an unknown key or a wrong type fails at composition.
Imported by the entry points before they compose.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from rlhf.core.config import AdapterConfig, ModelConfig
from rlhf.rewards.config import CRSRewardConfig, RewardModelRewardConfig, WordCountRewardConfig
from rlhf.rl.config import PPOStageConfig
from rlhf.dpo.config import (CDPOLossConfig, DPOStageConfig, HingeLossConfig, IPOLossConfig, KTOLossConfig,
                             ORPOLossConfig, RobustLossConfig, SigmoidLossConfig, SimPOLossConfig)
from rlhf.data.config import AbsoluteDataConfig, PreferenceDataConfig, PromptDataConfig, SFTDataConfig
from rlhf.reward_model.config import (LogisticLossConfig, MarginRankingLossConfig, MSELossConfig,
                                      PairwiseLogisticLossConfig, RewardStageConfig, SigmoidMSELossConfig)
from rlhf.sft.config import SFTStageConfig

SCHEMAS = {  # (group, name) -> dataclass
    ("model", "schema"): ModelConfig,
    ("peft", "schema"): AdapterConfig,
    ("stage", "ppo_schema"): PPOStageConfig,
    ("reward_fn", "word_count_schema"): WordCountRewardConfig,
    ("reward_fn", "reward_model_schema"): RewardModelRewardConfig,
    ("reward_fn", "crs_schema"): CRSRewardConfig,
    ("stage", "sft_schema"): SFTStageConfig,
    ("stage", "reward_schema"): RewardStageConfig,   # stage=reward and stage=reward_absolute
    ("reward_loss", "pairwise_logistic_schema"): PairwiseLogisticLossConfig,
    ("reward_loss", "margin_ranking_schema"): MarginRankingLossConfig,
    ("reward_loss", "logistic_schema"): LogisticLossConfig,
    ("reward_loss", "sig_mse_schema"): SigmoidMSELossConfig,
    ("reward_loss", "mse_schema"): MSELossConfig,
    ("stage", "dpo_schema"): DPOStageConfig,
    ("dpo_loss", "sigmoid_schema"): SigmoidLossConfig,
    ("dpo_loss", "cdpo_schema"): CDPOLossConfig,
    ("dpo_loss", "robust_schema"): RobustLossConfig,
    ("dpo_loss", "ipo_schema"): IPOLossConfig,
    ("dpo_loss", "hinge_schema"): HingeLossConfig,
    ("dpo_loss", "simpo_schema"): SimPOLossConfig,
    ("dpo_loss", "orpo_schema"): ORPOLossConfig,
    ("dpo_loss", "kto_schema"): KTOLossConfig,
    ("data", "sft_schema"): SFTDataConfig,
    ("data", "pairs_schema"): PreferenceDataConfig,
    ("data", "absolute_schema"): AbsoluteDataConfig,
    ("data", "prompts_schema"): PromptDataConfig,
}


def register_schemas() -> None:
    store = ConfigStore.instance()
    for (group, name), node in SCHEMAS.items():
        store.store(group=group, name=name, node=node)


register_schemas()
