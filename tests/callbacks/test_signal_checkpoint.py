"""SIGTERM/SIGINT during fit -> checkpoint at the batch end, clean stop, exact resume."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))  # dummy lives there
from dummy import TinyRegression, quiet_trainer, regression_loader  # noqa: E402

from callbacks.rng_state import RNGStateCheckpoint
from callbacks.signal_checkpoint import SignalCheckpoint
from rlhf.core.checkpoint_io import AtomicCheckpointIO


class SendSignal(L.Callback):
    """Deliver `signum` to this process when the batch of global step `at` starts."""

    def __init__(self, at: int, signum: int = signal.SIGTERM):
        self.at, self.signum = at, signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at:
            os.kill(os.getpid(), self.signum)


def fit(root, kill_at=None, ckpt_path=None, signum=signal.SIGTERM, rng=True, epochs=4):
    # 16 samples, batch 16: one batch per epoch, so every stop is at an epoch boundary (see RELIABILITY.md
    # for mid-epoch resume). Dropout 0.3 makes the result depend on the RNG stream.
    L.seed_everything(0)
    module = TinyRegression(dropout=0.3)
    callbacks = [SignalCheckpoint(dirpath=str(root))] + ([RNGStateCheckpoint()] if rng else [])
    if kill_at is not None:
        callbacks.append(SendSignal(kill_at, signum))
    trainer = quiet_trainer(root, max_epochs=epochs, callbacks=callbacks, plugins=[AtomicCheckpointIO()])
    trainer.fit(module, regression_loader(n=16, batch_size=16), ckpt_path=ckpt_path)
    return module, trainer


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_checkpoint_stops_and_resume_matches_uninterrupted(tmp_path, signum):
    handler_before = signal.getsignal(signum)
    reference, _ = fit(tmp_path / "reference")
    stopped, trainer = fit(tmp_path / "run", kill_at=1, signum=signum)
    # Signal during the batch of global step 1 -> that batch finishes -> global_step 2, then stop.
    assert trainer.global_step == 2
    assert trainer.should_stop and not trainer.interrupted
    assert (tmp_path / "run" / "last.ckpt").is_file()
    assert signal.getsignal(signum) == handler_before
    assert len(stopped.losses) == 2
    resumed, trainer = fit(tmp_path / "run", ckpt_path=str(tmp_path / "run" / "last.ckpt"))
    assert trainer.global_step == 4
    # 2 losses before + 2 after the resume must be exactly the 4 of the uninterrupted run.
    assert stopped.losses + resumed.losses == reference.losses
    assert torch.equal(resumed.layer.weight, reference.layer.weight)
    assert torch.equal(resumed.layer.bias, reference.layer.bias)


def test_without_rng_state_the_resumed_run_diverges(tmp_path):
    """Shows what RNGStateCheckpoint is for: the dropout stream after a resume differs otherwise."""
    reference, _ = fit(tmp_path / "reference", rng=False)
    fit(tmp_path / "run", kill_at=1, rng=False)
    resumed, _ = fit(tmp_path / "run", ckpt_path=str(tmp_path / "run" / "last.ckpt"), rng=False)
    assert not torch.equal(resumed.layer.weight, reference.layer.weight)


def test_second_sigint_falls_back_to_keyboard_interrupt(tmp_path):
    # A background job (nohup, CI runners) may start with SIGINT ignored: install Python's default first.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        callback = SignalCheckpoint(dirpath=str(tmp_path))
        previous = signal.getsignal(signal.SIGINT)
        trainer = quiet_trainer(tmp_path, max_epochs=1)
        callback.on_train_start(trainer, None)
        os.kill(os.getpid(), signal.SIGINT)          # first: recorded only
        assert callback.received == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):       # second: the previous handler (Python's default) runs
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == previous
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_mid_epoch_stop_with_model_checkpoint_resumes_the_rest_of_the_epoch(tmp_path):
    """ModelCheckpoint saving last.ckpt at the (early) epoch end must not mark the epoch as done."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    def fit_one_epoch(ckpt_path=None, kill_at=None):
        callbacks = [ModelCheckpoint(dirpath=str(tmp_path), save_last=True, save_top_k=0, every_n_train_steps=50),
                     SignalCheckpoint(dirpath=str(tmp_path))] + ([SendSignal(kill_at)] if kill_at is not None else [])
        trainer = quiet_trainer(tmp_path, max_epochs=1, callbacks=callbacks, enable_checkpointing=True,
                                plugins=[AtomicCheckpointIO()])
        trainer.fit(TinyRegression(), regression_loader(n=16, batch_size=4), ckpt_path=ckpt_path)
        return trainer

    assert fit_one_epoch(kill_at=1).global_step == 2
    # 16 samples / batch 4 = 4 steps in the epoch: the resume must run steps 2 and 3 too.
    assert fit_one_epoch(ckpt_path="last").global_step == 4
