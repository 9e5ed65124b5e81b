"""Export the policy a few times during training, so its held-out gold reward and KL to the start can be
measured per checkpoint afterwards: the KL-gold frontier of docs/algorithms.md §5.3.

The snapshots are HF folders written by the module's own `export` (PPO's actor, DPO's policy) into
`<dirpath>/step_<n>/`, at `count` steps spread evenly over the run (never at step 0 or the last step, whose
policies are the start and the final export). A resumed run skips the snapshots that exist.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch import Callback

log = logging.getLogger(__name__)


def snapshot_steps(total_steps: int, count: int) -> list[int]:
    """Steps round(total · k / (count + 1)) for k = 1..count, strictly between 0 and total, without repeats.

    total 24, count 2 -> [8, 16]; total 18, count 3 -> [4, 9, 14] (4.5 rounds to 4, 13.5 to 14: half to even)."""
    steps = {round(total_steps * k / (count + 1)) for k in range(1, count + 1)}
    return sorted(s for s in steps if 0 < s < total_steps)


def snapshot_dir(root: str | Path, step: int) -> Path:
    return Path(root) / f"step_{step:06d}"


class PolicySnapshots(Callback):
    def __init__(self, count: int = 2, dirpath: str | None = None):
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self.count = count
        self.dirpath = dirpath
        self.steps: list[int] = []

    def _root(self, trainer) -> Path:
        return Path(self.dirpath) if self.dirpath else Path(trainer.default_root_dir) / "snapshots"

    def on_train_start(self, trainer, pl_module) -> None:
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else trainer.estimated_stepping_batches
        self.steps = snapshot_steps(int(total), self.count)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step not in self.steps:
            return
        target = snapshot_dir(self._root(trainer), step)
        if (target / "merged").is_dir():
            return
        log.info("policy snapshot at step %d -> %s", step, target)
        pl_module.export(target)   # collective under FSDP2: every rank calls it, rank zero writes
