"""Typed settings of the DPO stage (`stage=dpo`): the arguments of rlhf.dpo.module.DPOModule and one
dataclass per loss, each the schema of its file in configs/dpo_loss/ (the group mounted at
`stage.module.loss`).

Each field holds its default once; the attribute docstring under it gives the source
(docs/algorithms.md §3 and the papers it cites). Recipes override them in configs/experiment/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlhf.core.config import OptimConfig, optim
from rlhf.core.schema import ABOVE_ZERO, NON_NEGATIVE, OneOf, POSITIVE, section, setting

REFERENCES = ("model", "cached")
NLL_REDUCTIONS = ("sequence", "token")


@dataclass
class SigmoidLossConfig:
    """−log σ(β h): DPO, Rafailov et al. 2023 eq. 7 (docs/algorithms.md §3.1)."""

    name: str = setting("sigmoid", choices=("sigmoid",))
    beta: float = setting(0.1, **ABOVE_ZERO)
    """Rafailov et al. 2023 (docs/algorithms.md §3.1)."""


@dataclass
class CDPOLossConfig:
    """−(1 − ε) log σ(β h) − ε log σ(−β h): conservative DPO, Mitchell 2023 (docs/algorithms.md §3.2)."""

    name: str = setting("cdpo", choices=("cdpo",))
    beta: float = setting(0.1, **ABOVE_ZERO)
    """DPO's β (docs/algorithms.md §3.1)."""
    label_smoothing: float = setting(0.1, low=0, high=0.5)
    """ε, Mitchell 2023; above ½ the smoothed label prefers y_l (docs/algorithms.md §3.2)."""


@dataclass
class RobustLossConfig:
    """Unbiased clean-label DPO under flip rate ε: rDPO, Chowdhury et al. 2024 eq. 8 (docs/algorithms.md §3.3)."""

    name: str = setting("robust", choices=("robust",))
    beta: float = setting(0.1, **ABOVE_ZERO)
    """DPO's β (docs/algorithms.md §3.1)."""
    flip_rate: float = setting(0.1, low=0, high=0.5, high_open=True)
    """ε: the paper gives none; 0.1 is this project's (docs/algorithms.md §3.3)."""


@dataclass
class IPOLossConfig:
    """(h − 1/(2τ))²: IPO, Azar et al. 2023 eq. 17 (docs/algorithms.md §3.4)."""

    name: str = setting("ipo", choices=("ipo",))
    beta: float = setting(0.1, **ABOVE_ZERO)
    """τ = 0.1, target h = 5 (docs/algorithms.md §3.4)."""
    average_log_probs: bool = False
    """The paper's sequence sums; true = per-token means, as TRL's "ipo" (docs/algorithms.md §3.4)."""


@dataclass
class HingeLossConfig:
    """max(0, 1 − β h): SLiC-HF's hinge on reference-normalised log-probs (docs/algorithms.md §3.5)."""

    name: str = setting("hinge", choices=("hinge",))
    beta: float = setting(0.1, **ABOVE_ZERO)
    """No source default; 0.1 as DPO (docs/algorithms.md §3.5)."""


@dataclass
class SimPOLossConfig:
    """−log σ((β/|y_w|) log π(y_w) − (β/|y_l|) log π(y_l) − γ): SimPO, Meng et al. 2024 eq. 6, no reference."""

    name: str = setting("simpo", choices=("simpo",))
    beta: float = setting(2.0, **ABOVE_ZERO)
    """Meng et al. 2024: β in 2.0–2.5 (docs/algorithms.md §3.6)."""
    gamma: float = setting(1.0, **NON_NEGATIVE)
    """γ/β = 0.5, Meng et al. 2024 (docs/algorithms.md §3.6)."""


@dataclass
class ORPOLossConfig:
    """NLL(y_w) + λ·(−log σ(log odds(y_w) − log odds(y_l))): ORPO, Hong et al. 2024 eqs. 6-7, no reference."""

    name: str = setting("orpo", choices=("orpo",))
    lam: float = setting(0.1, **NON_NEGATIVE)
    """λ, Hong et al. 2024 (docs/algorithms.md §3.7)."""
    nll_reduction: str = setting("sequence", choices=NLL_REDUCTIONS)
    """eq. 6's mean over pairs of per-sequence token means; `token` = one token mean (docs/algorithms.md §3.7)."""


@dataclass
class KTOLossConfig:
    """λ_D(1 − σ(β(r − z))) / λ_U(1 − σ(β(z − r))): KTO, Ethayarajh et al. 2024 eq. 8 (docs/algorithms.md §3.8).

    On pair data each pair gives one desirable (chosen) and one undesirable (rejected) example.
    """

    name: str = setting("kto", choices=("kto",))
    beta: float = setting(0.1, **ABOVE_ZERO)
    """Ethayarajh et al. 2024 (docs/algorithms.md §3.8)."""
    desirable_weight: float = setting(1.0, **NON_NEGATIVE)
    """λ_D; keep λ_D n_D / (λ_U n_U) in [1, 4/3] (docs/algorithms.md §3.8)."""
    undesirable_weight: float = setting(1.0, **NON_NEGATIVE)
    """λ_U (docs/algorithms.md §3.8)."""


LOSSES = {"sigmoid": SigmoidLossConfig, "cdpo": CDPOLossConfig, "robust": RobustLossConfig, "ipo": IPOLossConfig,
          "hinge": HingeLossConfig, "simpo": SimPOLossConfig, "orpo": ORPOLossConfig, "kto": KTOLossConfig}
REFERENCE_FREE = ("simpo", "orpo")
"""Losses without π_ref (docs/algorithms.md §3.6-3.7): no reference model is loaded for them."""


@dataclass
class DPOModuleConfig:
    """`stage.module` of `stage=dpo`."""

    _target_: str = "rlhf.dpo.module.DPOModule"
    _convert_: str = "object"
    model: Any = None
    """The `model` group: the policy's start, usually the SFT model, which is also π_ref (Rafailov et al. 2023 §4)."""
    peft: Any = None
    """The `peft` group: with LoRA the reference is the adapter-disabled policy (no second copy)."""
    loss: Any = section(OneOf(LOSSES))
    """One of configs/dpo_loss/ (told apart by `name`); None = sigmoid DPO."""
    reference: str = setting("model", choices=REFERENCES)
    """model: π_ref held during training (adapter-disabled policy under LoRA, else a frozen copy);
    cached: its log-probs computed in one pass before training, no reference held while training."""
    template: str = "chatml"
    """Recorded in the export, so implicit-reward scoring formats prompts as training did."""
    max_length: int = setting(2048, **POSITIVE)
    """Recorded in the export for scoring; the data's max_length (thesis §5.3)."""
    min_prompt_tokens: int = setting(256, **NON_NEGATIVE)
    """Recorded in the export for scoring; the data's min_prompt_tokens (thesis §5.3)."""
    optim: OptimConfig = optim(lr=1e-6, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.0, schedule="constant",
                               warmup_ratio=0.1)
    """Rafailov et al. 2023 App. B: lr 1e-6, linear warm-up then constant (150 of their steps; here a
    10 % ratio [default]); AdamW in place of their RMSprop. LoRA runs need a larger lr (~5e-6-5e-5)."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward: less memory, ~30 % more time."""


@dataclass
class DPOStageConfig:
    name: str = "dpo"
    module: DPOModuleConfig = field(default_factory=DPOModuleConfig)
