"""Lightning's ModelParallelStrategy (FSDP2) with the same checkpoint checks as every other strategy.

With `save_distributed_checkpoint: false` the strategy saves through the trainer's CheckpointIO
(`AtomicCheckpointIO`: temp file, fsync, rename), but it reads checkpoints with its own
`torch.load`, past that plugin: a missing, truncated, foreign or mismatched file would surface as
an unnamed torch or state-dict error. Here a consolidated checkpoint file goes through the
plugin's checks first (file, readability, Lightning keys, weights vs this module), then loads as usual.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.strategies import ModelParallelStrategy

from rlhf.core.checkpoint_io import AtomicCheckpointIO


class CheckedModelParallelStrategy(ModelParallelStrategy):
    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict:
        io = self.checkpoint_io
        if isinstance(io, AtomicCheckpointIO) and not Path(checkpoint_path).is_dir():
            io.load_checkpoint(checkpoint_path, weights_only=weights_only)   # raises CheckpointError naming the file
        return super().load_checkpoint(checkpoint_path, weights_only=weights_only)
