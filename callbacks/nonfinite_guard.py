"""Skip an optimizer step whose loss or gradient is NaN/inf; stop after too many in a row.

One bad batch (an fp16 overflow, a degenerate sample) should not poison the weights: the update
is dropped by setting every gradient to None, which torch optimizers treat as "no gradient" for
that step. Works for automatic and manual optimization alike, because Lightning calls
`on_before_backward` from `manual_backward` and `on_before_optimizer_step` from every
`optimizer.step()`. Many skips in a row mean the run itself has diverged.
"""

from __future__ import annotations

import logging

import torch
from lightning.pytorch import Callback

from rlhf.core.errors import TrainingFault
from rlhf.core.gradients import grads_are_finite

log = logging.getLogger(__name__)

METRIC = "train/nonfinite_skips"


class NonFiniteGuard(Callback):
    def __init__(self, max_consecutive: int = 5, metric: str = METRIC):
        if max_consecutive < 1:
            raise ValueError(f"max_consecutive must be >= 1, got {max_consecutive}")
        self.max_consecutive = max_consecutive
        self.metric = metric
        self.skips = 0
        self.consecutive = 0
        self._bad_loss: float | None = None

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            self._bad_loss = float(loss.detach().float().flatten()[0])

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        bad = self._bad_loss is not None or not grads_are_finite(optimizer)
        # All ranks skip together, or their weights would drift apart.
        bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            optimizer.zero_grad(set_to_none=True)
            self.skips += 1
            self.consecutive += 1
            what = f"loss {self._bad_loss}" if self._bad_loss is not None else "a NaN/inf gradient"
            log.warning("step %d: %s -> update skipped (%d in a row, %d in total)",
                        trainer.global_step, what, self.consecutive, self.skips)
        else:
            self.consecutive = 0
        self._bad_loss = None
        pl_module.log(self.metric, float(self.skips), on_step=True, on_epoch=False, reduce_fx="max")
        if self.consecutive >= self.max_consecutive:
            raise TrainingFault(
                f"step {trainer.global_step}: {self.consecutive} optimizer steps in a row had a NaN/inf loss or "
                f"gradient ({self.skips} skipped in total). Likely causes: learning rate too high, fp16/bf16 "
                "overflow (try precision=32 or a lower lr), a corrupt batch, or a reward/loss term that divides "
                "by ~0. Weights are those before the first skipped step.")

    def state_dict(self) -> dict:
        return {"skips": self.skips, "consecutive": self.consecutive}

    def load_state_dict(self, state_dict: dict) -> None:
        self.skips = int(state_dict.get("skips", 0))
        self.consecutive = int(state_dict.get("consecutive", 0))
