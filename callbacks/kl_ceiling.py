"""Stop PPO when the logged policy-reference KL passes a ceiling.

A KL that keeps growing means the policy is leaving the region where the reward model is
trustworthy: the usual causes are a learning rate too high, a KL coefficient (beta) too small,
or the policy exploiting the reward model (reward hacking, docs/methods.md §4). A negative mean KL
estimate is just as telling of a broken estimator or a mismatched reference, so it can be
bounded too.
"""

from __future__ import annotations

import logging
import math

from lightning.pytorch import Callback

from rlhf.core.errors import TrainingFault

log = logging.getLogger(__name__)


class KLCeiling(Callback):
    def __init__(self, ceiling: float = 10.0, metric: str = "train/kl_objective", floor: float | None = None,
                 action: str = "raise"):
        if action not in ("raise", "stop"):
            raise ValueError(f"action must be 'raise' or 'stop', got {action!r}")
        if not ceiling > 0:
            raise ValueError(f"ceiling must be > 0, got {ceiling}")
        self.ceiling = ceiling
        self.metric = metric
        self.floor = floor
        self.action = action
        self.tripped: str | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        value = trainer.callback_metrics.get(self.metric)
        if value is None or value.numel() != 1:
            return
        kl = float(value)
        if not math.isfinite(kl) or kl > self.ceiling:
            bound = f"above the ceiling {self.ceiling}"
            causes = ("learning rate too high, KL coefficient (beta) too small, or reward hacking "
                      "(the policy exploits the reward model)")
        elif self.floor is not None and kl < self.floor:
            bound = f"below the floor {self.floor}"
            causes = "a broken KL estimator, a reference model that differs from the initial policy, or mismatched masks"
        else:
            return
        self.tripped = (f"step {trainer.global_step}: {self.metric} = {kl:.4g} is {bound}. Likely causes: {causes}. "
                        f"Stopping (set the callback's ceiling/floor to change this).")
        if self.action == "raise":
            raise TrainingFault(self.tripped)
        log.error(self.tripped)
        trainer.should_stop = True
