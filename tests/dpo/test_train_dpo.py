"""`python -m rlhf.train stage=dpo` end to end, as a user runs it, on the tiny model and a JSONL here."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_dpo_train_starts_at_log2_and_lowers_the_loss_on_an_overfit_set(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    lines = [{"prompt": f"Question {i}: say something kind.", "chosen": f"Happy to help, friend {i}.",
              "rejected": f"Go away {i}."} for i in range(4)]
    pairs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    run_dir = tmp_path / "run"
    # one batch of all four pairs, repeated: every step sees the same data, so the loss must fall
    cmd = [sys.executable, "-m", "rlhf.train", "stage=dpo", "model=tiny", "data=pairs_jsonl",
           f"data.sources.0.path={pairs}", "data.batch_size=4", "data.val_fraction=0", "data.max_length=64",
           "data.min_prompt_tokens=8", "peft.dropout=0.0", "stage.module.optim.lr=1e-2",
           "stage.module.optim.warmup_ratio=0", "trainer=debug", "trainer.max_steps=6", "trainer.max_epochs=6",
           "logger=csv", "callbacks=none", f"hydra.run.dir={run_dir}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (metrics,) = run_dir.glob("csv/version_*/metrics.csv")
    with metrics.open() as handle:
        rows = list(csv.DictReader(handle))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 6
    # policy = reference at the start (LoRA B = 0), so h = 0 and −log σ(0) = log 2
    assert abs(losses[0] - math.log(2)) < 1e-5
    assert losses[-1] < losses[0] - 0.05
    accuracy = [float(r["train/rewards/accuracy"]) for r in rows if r.get("train/rewards/accuracy")]
    assert accuracy[-1] == 1.0
    meta = json.loads((run_dir / "model" / "merged" / "rlhf_metadata.json").read_text())
    assert meta["stage"] == "dpo" and meta["base"] == "tiny" and meta["loss"]["name"] == "sigmoid"
