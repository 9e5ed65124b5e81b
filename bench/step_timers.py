"""Step clocks for the two training loops under test, measured the same way.

A step's duration is the time between the end of the previous step and the end of this one (the
first step counts from the start of training), so data loading, logging and callbacks are part of
the step for both Lightning and the HF/TRL trainers.
"""

from __future__ import annotations

import time

import lightning as L
from transformers import TrainerCallback


class LightningStepTimer(L.Callback):
    def __init__(self):
        self.marks: list[float] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.marks = [time.perf_counter()]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.marks.append(time.perf_counter())

    @property
    def durations(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


class HFStepTimer(TrainerCallback):
    def __init__(self):
        self.marks: list[float] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.marks = [time.perf_counter()]

    def on_step_end(self, args, state, control, **kwargs):
        self.marks.append(time.perf_counter())

    @property
    def durations(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:])]
