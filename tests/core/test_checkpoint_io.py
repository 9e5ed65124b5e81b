"""Atomic checkpoint writes and clear errors for corrupt or mismatched checkpoints."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))  # dummy lives there
from dummy import TinyRegression, quiet_trainer, regression_loader  # noqa: E402

from callbacks.checkpoint_compat import CheckpointCompatibility
from rlhf.core.checkpoint_io import AtomicCheckpointIO, CheckpointError, state_dict_mismatch


def lightning_dict(value: float) -> dict:
    return {"state_dict": {"w": torch.full((2,), value)}, "pytorch-lightning_version": "2.6.6"}


def test_failure_mid_write_keeps_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint(lightning_dict(1.0), target)

    def dies_half_way(obj, handle):          # what a kill during the write leaves: some bytes, then nothing
        handle.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt("killed during write")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint(lightning_dict(2.0), target)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    assert torch.equal(io.load_checkpoint(target)["state_dict"]["w"], torch.tensor([1.0, 1.0]))


def test_written_file_has_the_usual_mode(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        AtomicCheckpointIO().save_checkpoint(lightning_dict(1.0), tmp_path / "a.ckpt")
    finally:
        os.umask(old)
    assert (tmp_path / "a.ckpt").stat().st_mode & 0o777 == 0o644   # 0o666 & ~0o022


def test_truncated_checkpoint_names_the_file(tmp_path):
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(lightning_dict(1.0), target)
    target.write_bytes(target.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"last\.ckpt.*unreadable.*truncated, corrupt"):
        AtomicCheckpointIO().load_checkpoint(target)


def test_pickled_object_is_refused(tmp_path):
    target = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2", "payload": Path("x")}, target)
    with pytest.raises(CheckpointError, match="evil.ckpt.*unreadable"):
        AtomicCheckpointIO().load_checkpoint(target)
    with pytest.raises(CheckpointError, match="weights_only=False"):
        AtomicCheckpointIO().load_checkpoint(target, weights_only=False)


def test_plain_state_dict_is_not_a_lightning_checkpoint(tmp_path):
    target = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, target)
    with pytest.raises(CheckpointError, match=r"weights.pt: not a Lightning checkpoint.*found \['w'\]"):
        AtomicCheckpointIO().load_checkpoint(target)


def test_missing_file_says_how_to_resume(tmp_path):
    with pytest.raises(CheckpointError, match="nope.ckpt: file not found.*hydra.run.dir"):
        AtomicCheckpointIO().load_checkpoint(tmp_path / "nope.ckpt")


def test_mismatch_lists_missing_unexpected_and_reshaped():
    expected = {"a": torch.zeros(2, 3), "b": torch.zeros(4), "c": torch.zeros(1)}
    loaded = {"a": torch.zeros(3, 2), "b": torch.zeros(4), "d": torch.zeros(1)}
    # by hand: c only in module, d only in checkpoint, a has (3, 2) vs (2, 3)
    assert state_dict_mismatch(expected, loaded) == [
        "1 missing from the checkpoint: c", "1 not in the module: d", "1 shape differs: a: checkpoint (3, 2) vs module (2, 3)"]


class WiderRegression(TinyRegression):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(5, 1)


def test_resume_into_a_different_module_is_a_clear_error(tmp_path):
    trainer = quiet_trainer(tmp_path, max_steps=1, plugins=[AtomicCheckpointIO()])
    trainer.fit(TinyRegression(), regression_loader())
    trainer.save_checkpoint(tmp_path / "small.ckpt")
    trainer = quiet_trainer(tmp_path, max_steps=2, plugins=[AtomicCheckpointIO()],
                            callbacks=[CheckpointCompatibility()])
    with pytest.raises(CheckpointError, match=r"small.ckpt: weights do not match WiderRegression.*"
                                              r"layer.weight: checkpoint \(1, 4\) vs module \(1, 5\)"):
        trainer.fit(WiderRegression(), regression_loader(), ckpt_path=str(tmp_path / "small.ckpt"))


def fsdp2_strategy(module=None):
    from rlhf.core.fsdp2_strategy import CheckedModelParallelStrategy

    strategy = CheckedModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1,
                                            save_distributed_checkpoint=False)
    strategy.checkpoint_io = AtomicCheckpointIO()
    if module is not None:
        strategy.checkpoint_io.bind_module(module)
    return strategy


def test_fsdp2_strategy_names_a_truncated_or_foreign_checkpoint(tmp_path):
    """ModelParallelStrategy reads checkpoints past the CheckpointIO; the project's subclass checks first."""
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(lightning_dict(1.0), target)
    target.write_bytes(target.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"last\.ckpt.*unreadable.*truncated, corrupt"):
        fsdp2_strategy().load_checkpoint(target)
    torch.save({"weight": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match=r"plain\.pt.*not a Lightning checkpoint"):
        fsdp2_strategy().load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match=r"missing\.ckpt.*file not found"):
        fsdp2_strategy().load_checkpoint(tmp_path / "missing.ckpt")


def test_fsdp2_strategy_names_a_checkpoint_of_another_module(tmp_path):
    target = tmp_path / "other.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"layer.weight": torch.zeros(1, 5)},
                                          "pytorch-lightning_version": "2"}, target)
    module = TinyRegression()                     # the plugin holds the module by weak reference
    with pytest.raises(CheckpointError, match=r"other\.ckpt.*do not match TinyRegression.*layer\.weight"):
        fsdp2_strategy(module).load_checkpoint(target)


def test_fsdp2_config_saves_through_the_atomic_plugin():
    """strategy=fsdp2 with the trainer's plugins: saving goes Strategy.save_checkpoint -> checkpoint_io."""
    import lightning as L

    from rlhf.core.fsdp2_strategy import CheckedModelParallelStrategy

    strategy = CheckedModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1,
                                            save_distributed_checkpoint=False)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=strategy, plugins=[AtomicCheckpointIO()],
                        logger=False, enable_progress_bar=False)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
