"""Typed settings of the RL stage, one dataclass per config section (`stage.module.<section>`).

Each field holds its default once; the attribute docstring under it gives the source
(docs/methods.md §4.12 lists the "when unstated" defaults). Recipes override them in
configs/experiment/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlhf.core.config import OptimConfig, optim
from rlhf.rl.advantages import KL_ESTIMATORS
from rlhf.core.schema import ABOVE_ZERO, NON_NEGATIVE, POSITIVE, UNIT, setting

CRITIC_KINDS = ("separate", "value_head", "none")
KL_PLACEMENTS = ("reward", "loss")
KL_CONTROLLERS = ("adaptive", "fixed")
ADVANTAGES = ("gae", "grpo", "rloo", "reinforce_pp", "reinforce_pp_baseline", "remax")
GROUP_ADVANTAGES = ("grpo", "rloo", "reinforce_pp_baseline")
"""Estimators whose baseline comes from the other samples of the same prompt."""
SEQUENCE_ADVANTAGES = ("grpo", "rloo", "remax")
"""Estimators that give one advantage per response (what GSPO's sequence ratio needs)."""
POLICY_LOSSES = ("clipped", "gspo", "gspo_token")
LOSS_AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")


@dataclass
class CriticConfig:
    kind: str = setting("separate", choices=CRITIC_KINDS)
    """ICE-GRT / Qwen: a separate value model (docs/methods.md §4.1); value_head = a scalar head on
    the actor's backbone (thesis, TRL); none = no value model, head or optimizer (the critic-free
    algorithms of docs/algorithms.md §1)."""
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
    """k1 = log π − log π_ref, the seeds' penalty (docs/methods.md §4.3 step 5); k2 = ½(log-ratio)²
    (= mse); k3 = GRPO's estimator (docs/algorithms.md §2.4)."""
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
    shared_prompt: bool = True
    """With n_samples_per_prompt > 1, the reference, recomputed and training forwards pack each prompt's
    samples into one sequence so the prompt is computed once (rlhf/rl/shared_prompt.py; same numbers up
    to float rounding); needs sdpa or eager attention. False = one row per sample."""
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
class AlgorithmConfig:
    """Which advantage estimator and policy loss the RL step uses (docs/algorithms.md §1, §2); the
    files of configs/algorithm/ set this section together with the other sections each method needs."""

    name: str = "ppo"
    """A label for logs and reports; the fields below decide what runs."""
    advantage: str = setting("gae", choices=ADVANTAGES)
    """gae = PPO with a critic (docs/methods.md §4.5); the others are critic-free (docs/algorithms.md §1)."""
    scale_std: bool = True
    """GRPO divides by the group std; Dr. GRPO does not (docs/algorithms.md §1.2)."""
    std_eps: float = setting(1e-6, **ABOVE_ZERO)
    """Added to the group std (docs/algorithms.md §1.1)."""
    unbiased_std: bool = True
    """Sample std (÷ G−1) as TRL and verl; False = population std (docs/algorithms.md §1.1)."""
    policy_loss: str = setting("clipped", choices=POLICY_LOSSES)
    """clipped = PPO's per-token surrogate (+ clip-higher, dual-clip); gspo = GSPO's sequence ratio,
    gspo_token = GSPO-token (docs/algorithms.md §1.4)."""
    clip_low: float | None = setting(None, low=0, high=1, high_open=True)
    """ε_low; None = update.clip_eps."""
    clip_high: float | None = setting(None, **NON_NEGATIVE)
    """ε_high ("clip-higher", DAPO §3.1: 0.28); None = ε_low."""
    dual_clip: float | None = setting(None, low=1, low_open=True)
    """Dual-clip bound c > 1 for negative advantages (Ye et al. 2020: 3); None = off (docs/algorithms.md §2.1)."""
    loss_aggregation: str = setting("token_mean", choices=LOSS_AGGREGATIONS)
    """token_mean = PPO / DAPO; seq_mean_token_mean = GRPO; seq_mean_token_sum_norm = Dr. GRPO
    (docs/algorithms.md §2.3)."""
    norm_constant: int | None = setting(None, **POSITIVE)
    """Dr. GRPO's constant C; None = rollout.max_new_tokens (the generation budget, §1.2)."""
    dynamic_sampling: bool = False
    """DAPO §3.2: drop groups whose rewards are all equal and refill the batch from new prompts."""
    max_refills: int = setting(3, **NON_NEGATIVE)
    """Extra prompt batches drawn per step by dynamic sampling before it trains on what it has
    (missing groups are then filled with dropped ones, which carry advantage 0)."""
    overlong_cache_fraction: float | None = setting(None, low=0, high=1, low_open=True)
    """DAPO §3.4 soft overlong punishment over the last fraction of rollout.max_new_tokens
    (DAPO: 4096 of 20480 = 0.2); None = off."""
    overlong_penalty_factor: float = setting(1.0, **NON_NEGATIVE)
    """Scale of the overlong penalty added to the score (DAPO: 1)."""


@dataclass
class PPOModuleConfig:
    """`stage.module` of `stage=ppo`: the arguments of rlhf.rl.module.PPOModule."""

    _target_: str = "rlhf.rl.module.PPOModule"
    _convert_: str = "object"
    _recursive_: bool = False
    """reward_fn nodes name their own `_target_`s; the module builds them (rlhf.rewards.build)."""
    model: Any = None
    """The actor's initial weights: the SFT model (docs/methods.md §4.1)."""
    peft: Any = None
    """LoRA on the actor; the reference is then the adapter-disabled actor (thesis Table 8)."""
    reward_fn: Any = None
    """PPO's reward: `reward_fn=word_count|reward_model|crs` (configs/reward_fn/)."""
    seed: int = 0
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
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


def algorithm_problems(cfg: PPOModuleConfig, key: str = "stage.module") -> list[tuple[str, str]]:
    """(key path, message) for each combination of sections that cannot run (docs/algorithms.md §1);
    checked at start-up, before any model loads, and again when the module is built directly."""
    algo, n = cfg.algorithm, cfg.rollout.n_samples_per_prompt
    problems = []
    if algo.advantage == "gae" and cfg.critic.kind == "none":
        problems.append((f"{key}.critic.kind", "advantage=gae (PPO) needs a critic: separate or value_head; "
                                               "the critic-free algorithms are algorithm=grpo|rloo|reinforce_pp|remax|..."))
    if cfg.critic.kind == "none" and cfg.update.critic_warmup_steps:
        problems.append((f"{key}.update.critic_warmup_steps", "there is no critic to warm up (critic.kind=none); set 0"))
    if algo.advantage != "gae" and cfg.critic.kind != "none":
        problems.append((f"{key}.critic.kind", f"advantage={algo.advantage} uses no value estimate; set critic.kind=none "
                                               "(a critic would be trained and never read)"))
    if algo.advantage in GROUP_ADVANTAGES and n < 2:
        problems.append((f"{key}.rollout.n_samples_per_prompt",
                         f"advantage={algo.advantage} takes its baseline from the other samples of a prompt: needs >= 2, got {n}"))
    minibatch = cfg.update.minibatch_size
    if algo.advantage in GROUP_ADVANTAGES and minibatch is not None and minibatch % n:
        problems.append((f"{key}.update.minibatch_size",
                         f"{minibatch} rows do not hold whole groups of rollout.n_samples_per_prompt={n}; use a multiple of {n}"))
    if algo.dynamic_sampling and algo.advantage not in GROUP_ADVANTAGES:
        problems.append((f"{key}.algorithm.dynamic_sampling",
                         f"drops groups of equal rewards, so it needs a group advantage ({', '.join(GROUP_ADVANTAGES)}); "
                         f"got advantage={algo.advantage}"))
    if algo.advantage == "remax" and cfg.rollout.top_k == 1:
        problems.append((f"{key}.rollout.top_k", "top_k=1 samples greedily, so every sample equals ReMax's greedy "
                                                 "baseline and every advantage is 0; use top_k=0 or > 1"))
    low = cfg.update.clip_eps if algo.clip_low is None else algo.clip_low
    if algo.clip_high is not None and algo.clip_high < low:
        problems.append((f"{key}.algorithm.clip_high", f"ε_high={algo.clip_high} < ε_low={low}: clip-higher widens the "
                                                       "upper side only (DAPO §3.1)"))
    if algo.policy_loss == "gspo" and algo.advantage not in SEQUENCE_ADVANTAGES:
        problems.append((f"{key}.algorithm.policy_loss", f"gspo's sequence ratio needs one advantage per response "
                                                         f"({', '.join(SEQUENCE_ADVANTAGES)}); advantage={algo.advantage} "
                                                         "is per token: use policy_loss=gspo_token"))
    if algo.policy_loss != "clipped" and algo.dual_clip is not None:
        problems.append((f"{key}.algorithm.dual_clip", "dual-clip applies to the per-token clipped surrogate only"))
    return problems
