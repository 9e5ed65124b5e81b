"""Typed settings of the components every stage shares: the model, its LoRA adapter, an optimizer.

Each field holds its default once; the attribute docstring under it gives the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlhf.core.schema import ABOVE_ZERO, FRACTION, NON_NEGATIVE, POSITIVE, REQUIRED, UNIT, setting

DTYPES = ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
SCHEDULES = ("cosine", "linear", "constant")


@dataclass
class TinyModelConfig:
    """Shape of the random-init Llama that tests and smoke runs use (`model=tiny`)."""

    hidden_size: int = setting(64, **POSITIVE)
    num_layers: int = setting(2, **POSITIVE)
    num_heads: int = setting(4, **POSITIVE)
    intermediate_size: int = setting(128, **POSITIVE)
    seed: int = 0


@dataclass
class ModelConfig:
    """The `model` config group: which weights and tokenizer to load, and how."""

    source: str = REQUIRED
    """An embedded name (`embedded:smollm2-135m`), `tiny`, a hub id or a local HF folder."""
    tokenizer: str | None = None
    """None = the tokenizer of `source`."""
    dtype: str = setting("float32", choices=DTYPES)
    """fp32 on CPU (bf16 is 10-30x slower there); bf16 on GPU."""
    cache_dir: str | None = None
    """Where embedded models are converted once; None = ~/.cache/rlhf."""
    trust_remote_code: bool = False
    """Never run model code from a repository unless asked."""
    tiny: TinyModelConfig | None = None
    """Shape of the random model when source is `tiny`."""
    fsdp_param_dtype: str | None = setting(None, choices=DTYPES)
    """FSDP2 mixed-precision parameter dtype; None = the model's own."""


@dataclass
class AdapterConfig:
    """The `peft` config group: LoRA through peft, or full fine-tuning when disabled."""

    enabled: bool = True
    r: int = setting(16, **POSITIVE)
    """thesis Tables 3, 5, 8."""
    alpha: float = setting(32, **ABOVE_ZERO)
    """thesis Tables 3, 5, 8."""
    dropout: float = setting(0.05, **FRACTION)
    """Not given by the thesis: docs/methods.md §2.6 [default]."""
    target_modules: Any = "all-linear"
    """thesis: "All" linear modules."""
    top_layers: int | None = setting(None, **POSITIVE)
    """Adapters only in the top N decoder layers (backward stops there); None = every layer."""


@dataclass
class OptimConfig:
    """AdamW and its learning-rate schedule (one per optimizer of a stage)."""

    lr: float = setting(1e-4, **NON_NEGATIVE)
    """0 freezes the weights (tests use it to check that nothing moves)."""
    betas: list[float] = setting(factory=lambda: [0.9, 0.999], length=2, **FRACTION)
    eps: float = setting(1e-8, **ABOVE_ZERO)
    weight_decay: float = setting(0.0, **NON_NEGATIVE)
    schedule: str = setting("cosine", choices=SCHEDULES)
    warmup_ratio: float = setting(0.0, **UNIT)
    """Fraction of the run's steps spent warming the learning rate up from 0."""
    grad_clip: float | None = setting(None, **ABOVE_ZERO)
    """Gradient-norm clip applied by stages that step their optimizers by hand (PPO)."""


def optim(**values) -> OptimConfig:
    """An OptimConfig default for a stage field (`field(default_factory=...)` needs a callable)."""
    return field(default_factory=lambda: OptimConfig(**values))
