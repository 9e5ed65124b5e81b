"""Let the atomic CheckpointIO compare a resumed checkpoint with the module before weights load.

Lightning loads the checkpoint file and the weights in one go after `configure_model`; the only
generic hook that runs earlier is `setup`, so the module is bound to the CheckpointIO there and
the comparison itself happens at load time (rlhf/checkpoint_io.py).
"""

from __future__ import annotations

from lightning.pytorch import Callback

from rlhf.core.checkpoint_io import AtomicCheckpointIO


class CheckpointCompatibility(Callback):
    def setup(self, trainer, pl_module, stage: str) -> None:
        io = trainer.strategy.checkpoint_io
        if isinstance(io, AtomicCheckpointIO):
            io.bind_module(pl_module)
