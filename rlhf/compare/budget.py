"""The budget of an arm: how many responses it generates to learn from (docs/algorithms.md §5.1), counted from
its composed config before anything runs, so a comparison whose arms differ is refused with the numbers.

    RL arm:        max_steps x prompts per step (data.batch_size) x rollout.n_samples_per_prompt
    DPO arm:       rounds x sample.prompts.n x sample.k   (the annotated samples its pairs come from, every round)

The samples behind a shared reward model are shared by the RL arms and counted with no arm.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from rlhf.core.errors import ConfigError
from rlhf.pipeline import compose_training_stage, evaluated_policy


@dataclass(frozen=True)
class Budget:
    arm: str
    samples: int | None
    formula: str
    """How the number was counted, e.g. '24 steps x 2 prompts x 4 samples'."""


def arm_budget(arm: str, cfg: DictConfig) -> Budget:
    """The budget of the arm whose pipeline config is `cfg` (Hydra must be initialised: the RL stage is composed)."""
    policy = evaluated_policy(cfg)
    if policy == "ppo":
        stage = compose_training_stage(cfg, "ppo", None)
        steps, prompts = int(stage.trainer.max_steps), int(stage.data.batch_size)
        n = int(stage.stage.module.rollout.n_samples_per_prompt)
        if steps <= 0:
            return Budget(arm, None, f"ppo.overrides.trainer.max_steps={steps}: an RL arm needs a step count")
        return Budget(arm, steps * prompts * n, f"{steps} steps x {prompts} prompts x {n} samples")
    rounds = int(cfg.get("rounds") or 1)
    prompts = cfg.sample.prompts.get("n") or cfg.sample.prompts.get("limit")
    if not prompts:
        return Budget(arm, None, "sample.prompts sets neither n nor limit: the DPO samples cannot be counted")
    k = int(cfg.sample.k)
    return Budget(arm, rounds * int(prompts) * k, f"{rounds} round(s) x {prompts} prompts x {k} samples")


def check_equal(budgets: list[Budget]) -> None:
    """One ConfigError listing every arm's count when a count is unknown or the counts differ."""
    table = "; ".join(f"{b.arm}: {b.samples if b.samples is not None else '?'} ({b.formula})" for b in budgets)
    if any(b.samples is None for b in budgets):
        raise ConfigError("arm", f"the budget of an arm cannot be counted: {table}")
    if len({b.samples for b in budgets}) > 1:
        raise ConfigError("arm", f"the arms would generate different numbers of training samples, so their results "
                                 f"would not compare: {table}. Make them equal (compare.rollouts_per_step, "
                                 f"compare.prompts_per_step x compare.group_size, sample.prompts.n x sample.k, rounds, "
                                 f"max_steps) or compare fewer arms")
