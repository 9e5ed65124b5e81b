"""PPO on the tiny model through the real entry point: SIGTERM mid-run, clean exit, resume to the end."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from sft_runs import REPO  # noqa: E402
from sft_runs import logged_metric as losses_of  # noqa: E402

PPO = ["stage=ppo", "data=prompts_demo", "model=tiny", "trainer=debug", "trainer.gradient_clip_val=null",
       "trainer.max_steps=4", "logger=csv", "stage.module.rollout.max_new_tokens=8", "data.batch_size=4",
       "callbacks.model_checkpoint.every_n_train_steps=1"]


def ppo_command(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rlhf.train", *PPO, f"hydra.run.dir={run_dir}", *extra]


@pytest.mark.slow
def test_ppo_sigterm_then_resume(tmp_path):
    reference = subprocess.run(ppo_command(tmp_path / "reference"), cwd=REPO, capture_output=True, text=True,
                               timeout=900)
    assert reference.returncode == 0, reference.stderr[-3000:]

    run_dir = tmp_path / "run"
    process = subprocess.Popen(ppo_command(run_dir), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    while not (run_dir / "checkpoints" / "last.ckpt").exists() and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output[-3000:]
    assert "stopped by SIGTERM" in output
    stopped_at = max(losses_of(run_dir, "train/reward_raw_mean"))
    assert stopped_at < 3

    resumed = subprocess.run(ppo_command(run_dir, "ckpt_path=last"), cwd=REPO, capture_output=True, text=True,
                             timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ours, theirs = losses_of(run_dir, "train/reward_raw_mean"), losses_of(tmp_path / "reference", "train/reward_raw_mean")
    assert sorted(ours) == sorted(theirs) == [0, 1, 2, 3]     # trainer.max_steps=4: steps 0..3, none lost
    # Every step, before and after the stop, equals the uninterrupted run (same prompts, seeds, weights,
    # optimizer, KL controller): LoaderPositionRestore puts the prompt loader back at the next batch.
    assert ours == theirs
    for metric in ("train/kl_objective", "train/policy_loss", "train/value_loss"):
        assert losses_of(run_dir, metric) == losses_of(tmp_path / "reference", metric), metric
