"""Typed settings of the RL stage, one dataclass per config section (`stage.module.<section>`).

Each field holds its default once; the attribute docstring under it gives the source
(docs/methods.md §4.12 lists the "when unstated" defaults). Recipes override them in
configs/experiment/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlhf.core.config import OptimConfig, optim
from rlhf.core.schema import ABOVE_ZERO, NON_NEGATIVE, POSITIVE, UNIT, setting

CRITIC_KINDS = ("separate", "value_head")
KL_PLACEMENTS = ("reward", "loss")
KL_CONTROLLERS = ("adaptive", "fixed")
KL_ESTIMATORS = ("k1", "k3", "abs", "mse")


@dataclass
class CriticConfig:
    kind: str = setting("separate", choices=CRITIC_KINDS)
    """ICE-GRT / Qwen: a separate value model (docs/methods.md §4.1); value_head = a scalar head on
    the actor's backbone (thesis, TRL)."""
    path: str | None = None
    """An RM or SFT folder to start the separate critic from; None = the actor's weights + a new
    zero head."""


@dataclass
class RolloutConfig:
    n_samples_per_prompt: int = setting(1, **POSITIVE)
    """docs/methods.md §4.12 [default] 1 (Qwen: 2)."""
    max_new_tokens: int = setting(512, **POSITIVE)
    """thesis §5.4."""
    temperature: float = setting(1.0, **ABOVE_ZERO)
    """Not given by the seeds: docs/methods.md §4.2 [default]."""
    top_k: int = setting(0, **NON_NEGATIVE)
    """0 = off: no seed uses top-k."""
    top_p: float = setting(1.0, low=0, high=1, low_open=True)
    """docs/methods.md §4.12 [default] 1.0 (Qwen 0.9)."""
    unfinished_penalty: float | None = None
    """Subtracted from the score of a response that never emitted EOS; None = off [default]."""
    logprobs_from_generation: bool = True
    """Old log-probs, entropy and value-head states from the sampling forwards (no second forward,
    ≈ 9 % of a step); False = recompute them with one forward over prompt + response."""


@dataclass
class ScoreConfig:
    normalize: bool = False
    """Qwen: running-mean normalisation of the scores (docs/methods.md §4.3 step 3)."""
    divide_std: bool = False
    """Also divide by the running std; Qwen subtracts the mean only (docs/methods.md §8.3.6)."""
    clip: float | None = setting(None, **ABOVE_ZERO)
    """thesis Table 8: ±4; None = off when unstated."""


@dataclass
class KLConfig:
    placement: str = setting("reward", choices=KL_PLACEMENTS)
    """Every seed puts the KL penalty in the reward (docs/methods.md §8.3.8); `loss` adds β·KL to
    the actor loss instead."""
    estimator: str = setting("k1", choices=KL_ESTIMATORS)
    """k1 = log π − log π_ref, the seeds' penalty (docs/methods.md §4.3 step 5); k3 as an option."""
    kind: str = setting("adaptive", choices=KL_CONTROLLERS)
    """thesis: an "initial" β implies an adaptive controller (docs/methods.md §4.4); Qwen: fixed."""
    init_beta: float = setting(0.002, **NON_NEGATIVE)
    """thesis Table 8 (Qwen 0.04)."""
    target: float | None = setting(6.0, **ABOVE_ZERO)
    """Adaptive controller's KL target: TRL's default [ext] (docs/methods.md §4.4)."""
    horizon: int | None = setting(10000, **POSITIVE)
    """Adaptive controller's horizon: TRL's default [ext] (docs/methods.md §4.4)."""


@dataclass
class UpdateConfig:
    epochs: int = setting(4, **POSITIVE)
    """Passes over each rollout batch: thesis Table 8."""
    minibatch_size: int | None = setting(None, **POSITIVE)
    """Rows per optimizer step; None = the whole rollout batch per process (docs/methods.md §4.8)."""
    micro_batch_size: int | None = setting(None, **POSITIVE)
    """Rows per forward/backward inside a minibatch, sorted by length (less padding and memory,
    same gradient); None = the whole minibatch in one forward."""
    clip_eps: float = setting(0.2, **ABOVE_ZERO)
    """Policy ratio clip: ICE-GRT §4 (thesis 0.4)."""
    clip_value: float = setting(0.2, **ABOVE_ZERO)
    """Value clip: docs/methods.md §8.3.5 [default] (Qwen 0.15, thesis 0.4)."""
    gamma: float = setting(1.0, **UNIT)
    """TRL's default [ext] (ICE-GRT 0.95)."""
    lam: float = setting(0.95, **UNIT)
    """GAE λ: TRL's default [ext]."""
    whiten_advantages: bool = True
    """ICE-GRT §3.3.4."""
    vf_coef: float = setting(0.1, **NON_NEGATIVE)
    """Value-loss weight for a value-head critic (shared backbone): TRL's default [ext]
    (docs/methods.md §4.7); a separate critic has its own optimizer and weight 1."""
    entropy_coef: float = setting(0.0, **NON_NEGATIVE)
    """No seed uses an entropy bonus (docs/methods.md §4.7)."""
    early_stop_kl: float | None = setting(None, **ABOVE_ZERO)
    """Stop a step's epochs once the approximate KL to the rollout policy exceeds this; None = off."""
    max_nonfinite_in_a_row: int = setting(5, **POSITIVE)
    """Minibatch updates skipped for a NaN/inf loss or gradient before the run stops."""
    critic_warmup_steps: int = setting(0, **NON_NEGATIVE)
    """Steps that train only the critic: Qwen 50 (docs/methods.md §4.8); 0 when unstated."""
    ptx_coef: float = setting(0.0, **NON_NEGATIVE)
    """Qwen's pretraining-loss mixing; its coefficient is not given (docs/methods.md §4.9) -> off."""


@dataclass
class PPOModuleConfig:
    """`stage.module` of `stage=ppo`: the arguments of rlhf.rl.module.PPOModule."""

    _target_: str = "rlhf.rl.module.PPOModule"
    _convert_: str = "object"
    model: Any = None
    """The actor's initial weights: the SFT model (docs/methods.md §4.1)."""
    peft: Any = None
    """LoRA on the actor; the reference is then the adapter-disabled actor (thesis Table 8)."""
    reward_fn: Any = None
    """PPO's reward: `reward_fn=word_count|reward_model|crs` (configs/reward_fn/)."""
    seed: int = 0
    critic: CriticConfig = field(default_factory=CriticConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    kl: KLConfig = field(default_factory=KLConfig)
    update: UpdateConfig = field(default_factory=UpdateConfig)
    actor_optim: OptimConfig = optim(lr=1.41e-5, betas=[0.9, 0.95], eps=1e-8, weight_decay=1e-6,
                                     schedule="constant", warmup_ratio=0.0, grad_clip=1.0)
    """thesis Table 8 (ICE-GRT 5e-6, Qwen 1e-6); schedule and clip not given by any seed [default]."""
    critic_optim: OptimConfig = optim(lr=1.41e-5, betas=[0.9, 0.95], eps=1e-8, weight_decay=1e-6,
                                      schedule="constant", warmup_ratio=0.0, grad_clip=1.0)
    """thesis: one shared lr (ICE-GRT 5e-7, Qwen 5e-6)."""
    log_samples_every_n_steps: int = setting(10, **NON_NEGATIVE)
    """Sample table (prompt, response, reward) to samples.jsonl and wandb every N steps; 0 = never."""
    disable_dropout: bool = True
    """KL must be 0 at step 0 (docs/methods.md §4.10)."""
    export_critic: bool = True
    """Save the separate critic next to the policy, so a later run can start from it."""


@dataclass
class PPOStageConfig:
    name: str = "ppo"
    trainer: dict = field(default_factory=lambda: {"gradient_clip_val": None})
    """Trainer keys this stage pins: Lightning forbids automatic clipping with manual optimisation
    (clipping is per optimizer, `*_optim.grad_clip`)."""
    module: PPOModuleConfig = field(default_factory=PPOModuleConfig)
