"""Stop on SIGTERM / SIGINT at the end of the current batch, leaving a resumable Lightning checkpoint.

Schedulers (SLURM, Kubernetes, spot instances) send SIGTERM some seconds before they kill a job.
Lightning's own SIGTERM handling raises out of the loop without a checkpoint; this callback
instead saves `<dirpath>/last.ckpt` (written through the trainer's CheckpointIO, atomic with
rlhf.core.checkpoint_io.AtomicCheckpointIO) and sets `trainer.should_stop`, so `fit` returns normally
and the same command with `ckpt_path=last` resumes. A second signal falls back to
the previous handler, so an impatient Ctrl-C still interrupts at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


class SignalCheckpoint(Callback):
    def __init__(self, dirpath: str | None = None, filename: str = "last.ckpt",
                 signals: tuple[str, ...] | list[str] = ("SIGTERM", "SIGINT")):
        self.dirpath = dirpath
        self.filename = filename
        self.signals = [getattr(signal, name) for name in signals]
        self.received: int | None = None
        self.saved_path: str | None = None
        self._previous: dict[int, object] = {}

    def checkpoint_path(self, trainer) -> Path:
        """Default: the ModelCheckpoint folder, so Lightning's `ckpt_path="last"` finds the file."""
        if self.dirpath:
            return Path(self.dirpath) / self.filename
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath:
                return Path(callback.dirpath) / self.filename
        return Path(trainer.default_root_dir) / "checkpoints" / self.filename

    def on_train_start(self, trainer, pl_module) -> None:
        # Installed here, after the Trainer registered its SIGTERM notifier, so that notifier (which
        # raises SIGTERMException at the batch end and skips any checkpoint) is replaced while training.
        if threading.current_thread() is not threading.main_thread():
            log.warning("SignalCheckpoint: not in the main thread, signal handlers not installed")
            return
        self.received = None
        for signum in self.signals:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        if self.received is None:
            self.received = signum
            log.warning("received %s: saving a checkpoint and stopping at the end of this batch "
                        "(send it again to interrupt at once)", signal.Signals(signum).name)
            return
        previous = self._previous.get(signum)
        self._restore_handlers()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.raise_signal(signum)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Every rank must agree: the signal may reach only some of them, and saving is collective.
        if not trainer.strategy.reduce_boolean_decision(self.received is not None, all=False):
            return
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        trainer.should_stop = True
        for callback in trainer.checkpoint_callbacks:
            # Stopping mid-epoch still runs the epoch-end and train-end hooks; a ModelCheckpoint saving
            # `last.ckpt` there (or `last-v1.ckpt`, which `ckpt_path=last` would then prefer as newer)
            # records the epoch as finished, and the resume would skip the rest of it. Marking this
            # step as saved uses ModelCheckpoint's own rules: one save per global step, and no
            # train-end `save_last` once a checkpoint exists.
            if isinstance(callback, ModelCheckpoint):
                callback._last_global_step_saved = trainer.global_step
                callback._last_checkpoint_saved = str(path)
        self.saved_path = str(path)
        name = signal.Signals(self.received).name if self.received else "a signal on another rank"
        log.warning("stopped by %s at global step %d; checkpoint %s (resume with ckpt_path=last or ckpt_path=%s)",
                    name, trainer.global_step, path, path)

    def _restore_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore_handlers()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore_handlers()
