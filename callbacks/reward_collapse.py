"""Warn when the reward signal stops varying: PPO then has no advantage left to learn from.

A reward model that scores every response alike (collapse, saturation of a sigmoid output,
normalisation with a std of ~0) makes the run look healthy while learning nothing. The
callback keeps the last `window` logged values of a metric and warns when their population
standard deviation, sqrt(mean((x - mean(x))^2)), is below `min_std`.
"""

from __future__ import annotations

import logging
import math
from collections import deque

from lightning.pytorch import Callback

log = logging.getLogger(__name__)


def window_std(values) -> float:
    """Population std sqrt(sum (x - mean)^2 / n) of a non-empty sequence."""
    values = list(values)
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


class RewardCollapseWarning(Callback):
    def __init__(self, metric: str = "train/reward_raw_mean", window: int = 20, min_std: float = 1e-4):
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        self.metric = metric
        self.window = window
        self.min_std = min_std
        self.values: deque[float] = deque(maxlen=window)
        self.warnings: list[str] = []
        self._collapsed = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        value = trainer.callback_metrics.get(self.metric)
        if value is None or value.numel() != 1:
            return
        self.values.append(float(value))
        if len(self.values) < self.window:
            return
        std = window_std(self.values)
        collapsed = std < self.min_std
        if collapsed and not self._collapsed:
            message = (f"step {trainer.global_step}: {self.metric} has std {std:.3g} < {self.min_std} over the last "
                       f"{self.window} steps (reward collapse: the reward model scores everything alike, or the "
                       "reward is saturated/normalised away; PPO has no signal to learn from)")
            self.warnings.append(message)
            log.warning(message)
        self._collapsed = collapsed
