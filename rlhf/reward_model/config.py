"""Typed settings of the reward stages (`stage=reward | reward_absolute`): the arguments of
rlhf.reward_model.module.RewardModule and one dataclass per loss, each the schema of its file in
configs/reward_loss/ (the group mounted at `stage.module.loss`).

Each field holds its default once; the attribute docstring under it gives the source
(docs/methods.md §3; thesis Table 5). Recipes override them in configs/experiment/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlhf.core.config import OptimConfig, optim
from rlhf.core.schema import NON_NEGATIVE, OneOf, POSITIVE, section, setting

KINDS = ("preference", "absolute")


@dataclass
class PairwiseLogisticLossConfig:
    """-log σ(r_w - r_l - m) + c·(r_w + r_l)²: thesis eq. 2.12 (docs/methods.md §3.4)."""

    name: str = setting("pairwise_logistic", choices=("pairwise_logistic",))
    margin: float = setting(0.0, **NON_NEGATIVE)
    """thesis eq. 2.12 has none."""
    center_coef: float = setting(0.0, **NON_NEGATIVE)
    """Reward centering, off: no seed uses it [default]."""
    group_mean: bool = True
    """Mean per prompt, then over prompts: the 1/C(K,2) of thesis eq. 2.12."""


@dataclass
class MarginRankingLossConfig:
    """max(0, m - r_w + r_l): ICE-GRT's ICE-Reward loss (ICE-GRT §3.2, docs/methods.md §3.4)."""

    name: str = setting("margin_ranking", choices=("margin_ranking",))
    margin: float = setting(1.0, **NON_NEGATIVE)
    """Not given by ICE-GRT: docs/methods.md §8.3.1 [default]."""
    group_mean: bool = False
    """ICE-GRT pairs are flat: every pair weighs the same."""


@dataclass
class LogisticLossConfig:
    """BCE(σ(z), y) with soft labels: the thesis's chosen absolute loss (thesis §5.3.2, docs/methods.md §3.6)."""

    name: str = setting("logistic", choices=("logistic",))


@dataclass
class SigmoidMSELossConfig:
    """(σ(z) - y)²: thesis `sig+mse` (thesis §5.3.1, docs/methods.md §3.6)."""

    name: str = setting("sig+mse", choices=("sig+mse",))


@dataclass
class MSELossConfig:
    """(z - y)² + c·(relu(z - 1) + relu(-z)): thesis unbounded `mse` (thesis §5.3.1, docs/methods.md §3.6)."""

    name: str = setting("mse", choices=("mse",))
    penalty_coef: float = setting(0.02, **NON_NEGATIVE)
    """The thesis's "2 %" range penalty (docs/methods.md §3.6 [default reading])."""


PREFERENCE_LOSSES = {"pairwise_logistic": PairwiseLogisticLossConfig, "margin_ranking": MarginRankingLossConfig}
ABSOLUTE_LOSSES = {"logistic": LogisticLossConfig, "sig+mse": SigmoidMSELossConfig, "mse": MSELossConfig}
LOSSES = {**PREFERENCE_LOSSES, **ABSOLUTE_LOSSES}
DEFAULT_LOSS = {"preference": "pairwise_logistic", "absolute": "logistic"}
"""thesis eq. 2.12 for preferences; the thesis's chosen absolute loss (thesis §5.3.2)."""


@dataclass
class RewardModuleConfig:
    """`stage.module` of `stage=reward | reward_absolute`."""

    _target_: str = "rlhf.reward_model.module.RewardModule"
    _convert_: str = "object"
    model: Any = None
    """The `model` group: the backbone, usually the SFT model (docs/methods.md §3.1)."""
    peft: Any = None
    """The `peft` group: thesis Table 5 LoRA r 16 / alpha 32."""
    kind: str = setting("preference", choices=KINDS)
    """preference: pairs / K-way rankings (docs/methods.md §3.3); absolute: labels in [0, 1] (§3.5)."""
    loss: Any = section(OneOf(LOSSES))
    """One of configs/reward_loss/ (told apart by `name`); None = the kind's DEFAULT_LOSS."""
    template: str = "chatml"
    """Saved in reward_stats.json, so scoring formats prompts as training did."""
    max_length: int = setting(2048, **POSITIVE)
    """thesis §5.3."""
    min_prompt_tokens: int = setting(256, **NON_NEGATIVE)
    """thesis §5.3."""
    optim: OptimConfig = optim(lr=5e-5, betas=[0.9, 0.95], eps=1e-8, weight_decay=0.0, schedule="cosine",
                               warmup_ratio=0.03)
    """thesis Table 5: lr 5e-5, betas (0.9, 0.95), cosine, warm-up 3 %; eps not given: torch's
    default; weight decay not given: docs/methods.md §2.6 [default] 0."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward: less memory, ~30 % more time."""


@dataclass
class RewardStageConfig:
    name: str = "reward"
    module: RewardModuleConfig = field(default_factory=RewardModuleConfig)
