"""A stop in the middle of an epoch resumes at the next batch of the same shuffle."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "callbacks"))  # test_signal_checkpoint lives there
from dummy import TinyRegression, quiet_trainer  # noqa: E402
from test_signal_checkpoint import SendSignal  # noqa: E402

from callbacks.loader_position import LoaderPositionRestore
from callbacks.rng_state import RNGStateCheckpoint
from callbacks.signal_checkpoint import SignalCheckpoint
from rlhf.core.checkpoint_io import AtomicCheckpointIO
from rlhf.data.resumable_loader import ResumableLoader


class ScheduledRegression(TinyRegression):
    """Sizes its schedule from `estimated_stepping_batches`, as the SFT/RM/PPO modules do: this makes
    Lightning build the train loader before the checkpoint is read."""

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
        total = int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / (total + 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def dataset(n: int = 16) -> TensorDataset:
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
    return TensorDataset(x, x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1)


def fit(root, kill_at=None, ckpt_path=None, restore_position=True):
    torch.manual_seed(0)
    module = ScheduledRegression()
    callbacks = [SignalCheckpoint(dirpath=str(root)), RNGStateCheckpoint()]
    callbacks += [LoaderPositionRestore()] if restore_position else []
    callbacks += [SendSignal(kill_at)] if kill_at is not None else []
    trainer = quiet_trainer(root, max_epochs=2, callbacks=callbacks, plugins=[AtomicCheckpointIO()])
    trainer.fit(module, ResumableLoader(dataset(), 4, None, seed=3), ckpt_path=ckpt_path)
    return module


@pytest.mark.parametrize("kill_at", [1, 5])      # 4 batches per epoch: mid first epoch, mid second epoch
def test_mid_epoch_stop_resumes_the_same_batches(tmp_path, kill_at):
    reference = fit(tmp_path / "reference")
    stopped = fit(tmp_path / "run", kill_at=kill_at)
    assert len(stopped.losses) == kill_at + 1
    resumed = fit(tmp_path / "run", ckpt_path=str(tmp_path / "run" / "last.ckpt"))
    assert stopped.losses + resumed.losses == reference.losses      # 8 steps, bit for bit
    assert torch.equal(resumed.layer.weight, reference.layer.weight)


def test_without_the_position_callback_the_epoch_starts_over(tmp_path):
    """What LoaderPositionRestore is for: with a schedule sized from estimated_stepping_batches,
    Lightning drops the saved loader position and the resumed run sees the epoch's first batches again."""
    reference = fit(tmp_path / "reference")
    stopped = fit(tmp_path / "run", kill_at=1)
    resumed = fit(tmp_path / "run", ckpt_path=str(tmp_path / "run" / "last.ckpt"), restore_position=False)
    assert stopped.losses + resumed.losses != reference.losses
