"""Typed settings of the SFT stage (`stage=sft`): the arguments of rlhf.sft.module.SFTModule.

Each field holds its default once; the attribute docstring under it gives the source
(docs/methods.md §2.6; thesis Table 3). Recipes override them in configs/experiment/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlhf.core.config import OptimConfig, optim


@dataclass
class SFTModuleConfig:
    """`stage.module` of `stage=sft`."""

    _target_: str = "rlhf.sft.module.SFTModule"
    _convert_: str = "object"
    model: Any = None
    """The `model` group: the base to fine-tune."""
    peft: Any = None
    """The `peft` group: thesis Table 3 LoRA r 16 / alpha 32 on all linear modules."""
    optim: OptimConfig = optim(lr=1e-4, betas=[0.9, 0.999], eps=1e-12, weight_decay=0.0, schedule="cosine",
                               warmup_ratio=0.03)
    """thesis Table 3: lr 1e-4, betas (0.9, 0.999), eps 1e-12, cosine, warm-up 3 %; weight decay not
    given: docs/methods.md §2.6 [default] 0. The thesis clip 0.3 is trainer.gradient_clip_val."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward: less memory, ~30 % more time."""


@dataclass
class SFTStageConfig:
    name: str = "sft"
    module: SFTModuleConfig = field(default_factory=SFTModuleConfig)
