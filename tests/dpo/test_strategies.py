"""DPO on two CPU processes (gloo), DDP and FSDP2, gives the single-process loss curve and model."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parents[2]


def _epoch_losses(run_dir: Path) -> list[float]:
    (metrics,) = run_dir.glob("csv/version_*/metrics.csv")
    with metrics.open() as handle:
        return [float(row["train/epoch_loss"]) for row in csv.DictReader(handle) if row["train/epoch_loss"]]


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("reference", ["model", "cached"])
def test_dpo_on_two_ddp_and_fsdp2_processes_matches_one(tmp_path, reference):
    """Same seed, same global batch (8 pairs = 1 x 8 = 2 ranks x 4), same loss curve within 1e-4.

    8 pairs and batch 8 make every step one epoch over the whole set, so shuffling cannot change what a
    step sees; the sigmoid loss is a mean over pairs, so the mean of the two ranks' 4-pair means (DDP's
    and FSDP2's gradient average) is the 8-pair mean, and `train/epoch_loss` is a MeanMetric synced over
    ranks. π_ref is the adapter-disabled policy (reference=model) or its log-probs cached before step 1
    on each rank (reference=cached). LoRA dropout 0: no RNG stream differs between runs.
    """
    pairs = tmp_path / "pairs.jsonl"
    lines = [{"prompt": f"Question {i}: say something{' really' * (i % 3)} kind.",
              "chosen": f"Happy to help, friend {i}.", "rejected": f"Go away {i}, {'now ' * (i % 4)}."}
             for i in range(8)]
    pairs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    common = [sys.executable, "-m", "rlhf.train", "stage=dpo", "model=tiny", "data=pairs_jsonl",
              f"data.sources.0.path={pairs}", "data.val_fraction=0", "data.max_length=64", "data.min_prompt_tokens=8",
              "trainer=debug", "trainer.max_steps=4", "trainer.max_epochs=4", "peft.dropout=0.0",
              f"stage.module.reference={reference}", "stage.module.optim.lr=1.0e-2",
              "stage.module.optim.warmup_ratio=0", "logger=csv", "callbacks=none"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    runs = {"single": ["strategy=single", "data.batch_size=8"],
            "ddp": ["strategy=ddp", "trainer.devices=2", "data.batch_size=4"],
            "fsdp2": ["strategy=fsdp2", "trainer.devices=2", "data.batch_size=4"]}
    losses = {}
    for name, extra in runs.items():
        result = subprocess.run([*common, *extra, f"hydra.run.dir={tmp_path / name}"], cwd=REPO_ROOT, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        losses[name] = _epoch_losses(tmp_path / name)
    single = losses["single"]
    assert len(single) == 4 and single[-1] < single[0] - 0.05   # the curve moves: matching it is not vacuous
    assert single[0] == pytest.approx(0.6931, abs=1e-3)        # policy = π_ref at step 1: −log σ(0) = log 2
    assert losses["ddp"] == pytest.approx(single, abs=1e-4)
    assert losses["fsdp2"] == pytest.approx(single, abs=1e-4)
    # every strategy exports the same merged policy (FSDP2's gathered from its shards)
    weights = {name: load_file(tmp_path / name / "model" / "merged" / "model.safetensors") for name in runs}
    for name in ("ddp", "fsdp2"):
        assert weights[name].keys() == weights["single"].keys()
        for key, value in weights["single"].items():
            assert torch.allclose(weights[name][key], value, atol=1e-4, rtol=0), (name, key)
