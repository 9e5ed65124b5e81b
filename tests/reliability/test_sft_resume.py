"""Real entry point on the tiny model: SIGTERM mid-run, exit 0 with a checkpoint, resume, same result."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from sft_runs import REPO, logged_losses, run_sft, sft_command, write_sft_jsonl  # noqa: E402

EPOCHS = "trainer.max_epochs=30"


@pytest.mark.slow
def test_sigterm_then_resume_equals_uninterrupted_sft(tmp_path):
    data = write_sft_jsonl(tmp_path / "sft.jsonl")
    reference = run_sft(data, tmp_path / "reference", EPOCHS)
    assert reference.returncode == 0, reference.stderr[-3000:]

    run_dir = tmp_path / "run"
    # model_checkpoint writes last.ckpt every 3 steps: its appearance tells the test training is under way.
    process = subprocess.Popen(sft_command(data, run_dir, EPOCHS, "callbacks.model_checkpoint.every_n_train_steps=3"),
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while not (run_dir / "checkpoints" / "last.ckpt").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 0, output[-3000:]
    assert "stopped by SIGTERM" in output
    interrupted = logged_losses(run_dir)
    assert 3 <= max(interrupted) < 29            # stopped part-way (30 steps in all: 0..29)
    assert not list((run_dir / "checkpoints").glob("*.tmp"))

    resumed = run_sft(data, run_dir, EPOCHS, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restoring states from the checkpoint" in resumed.stdout + resumed.stderr
    expected = logged_losses(tmp_path / "reference")
    assert sorted(expected) == list(range(30))
    assert logged_losses(run_dir) == expected     # every step's loss, bit for bit
    ours = load_file(run_dir / "model" / "merged" / "model.safetensors")
    theirs = load_file(tmp_path / "reference" / "model" / "merged" / "model.safetensors")
    assert ours.keys() == theirs.keys()
    assert all((ours[k] == theirs[k]).all() for k in ours)
