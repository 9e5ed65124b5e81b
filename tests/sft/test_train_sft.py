"""The Hydra entry point end to end, as a user runs it.

Both tests start `python -m rlhf.train` in a subprocess on the tiny model and a JSONL file written
here, so they need neither the network nor ../shared/data.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlhf.data.templates import get_template, tokenize_conversation
from rlhf.core.models import load_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMON = ["model=tiny", "data=jsonl", "data.max_length=64", "trainer=debug", "logger=csv", "callbacks=none"]


def _write_data(path: Path, n: int) -> Path:
    # Every response "The number is <digit>." has the same token count; prompts differ in length.
    path.write_text("".join(json.dumps({"prompt": f"Tell me number {i % 10}{' please' * (i % 3)}.",
                                        "response": f"The number is {i % 10}."}) + "\n" for i in range(n)))
    return path


def _train(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "rlhf.train", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _epoch_losses(run_dir: Path) -> list[float]:
    (metrics,) = run_dir.glob("csv/version_*/metrics.csv")
    with metrics.open() as handle:
        return [float(row["train/epoch_loss"]) for row in csv.DictReader(handle) if row["train/epoch_loss"]]


@pytest.mark.slow
def test_multirun_of_two_sft_jobs(tmp_path):
    data = _write_data(tmp_path / "sft.jsonl", 16)
    sweep = tmp_path / "sweep"
    _train(["-m", *COMMON, f"data.sources.0.path={data}", "trainer.max_steps=2",
            "stage.module.optim.lr=1.0e-4,3.0e-4", f"hydra.sweep.dir={sweep}"])
    for job, lr in (("0", 1.0e-4), ("1", 3.0e-4)):
        run_dir = sweep / job
        resolved = yaml.safe_load((run_dir / "config_resolved.yaml").read_text())
        assert resolved["stage"]["module"]["optim"]["lr"] == lr
        assert resolved["paths"]["output_dir"] == str(run_dir)
        assert (run_dir / "run_info.json").is_file()
        assert (run_dir / "model" / "merged" / "config.json").is_file()
        assert (run_dir / "model" / "merged" / "model.safetensors").is_file()
        assert (run_dir / "model" / "adapter" / "adapter_model.safetensors").is_file()
        assert len(_epoch_losses(run_dir)) == 1


@pytest.mark.slow
@pytest.mark.distributed
def test_fsdp2_on_two_processes_matches_single_process(tmp_path):
    """Same seed, same global batch (8 = 1 x 8 = 2 ranks x 4), same loss curve within 1e-4.

    8 records and batch 8 make every step one epoch over the whole set, so shuffling cannot change
    what a step sees; equal response lengths make the mean of the two per-rank token means equal
    the single-process token mean. `train/epoch_loss` is a torchmetrics mean synced over ranks, so
    it is the global loss of each step. LoRA dropout is 0 so no RNG stream differs between runs.
    Tolerance 1e-4 (absolute, losses ~ 10): float32 reductions in a different order.
    """
    data = _write_data(tmp_path / "sft.jsonl", 8)
    tok = load_tokenizer("embedded:smollm2-135m")
    template = get_template("chatml")
    response_tokens = {sum(label != -100 for label in tokenize_conversation(
        tok, [{"role": "user", "content": "q"}, {"role": "assistant", "content": f"The number is {i}."}],
        template)["labels"]) for i in range(8)}
    assert len(response_tokens) == 1  # precondition of the equality argument above
    common = [*COMMON, f"data.sources.0.path={data}", "data.val_fraction=0", "trainer.max_steps=5",
              "trainer.max_epochs=5", "peft.dropout=0.0", "stage.module.optim.lr=1.0e-2",
              "stage.module.optim.warmup_ratio=0"]
    _train([*common, "strategy=single", "data.batch_size=8", f"hydra.run.dir={tmp_path / 'single'}"])
    _train([*common, "strategy=fsdp2", "trainer.devices=2", "data.batch_size=4",
            f"hydra.run.dir={tmp_path / 'fsdp2'}"])
    single, sharded = _epoch_losses(tmp_path / "single"), _epoch_losses(tmp_path / "fsdp2")
    assert len(single) == len(sharded) == 5
    assert single[-1] < single[0] - 0.05  # the curve moves, so matching it is not vacuous
    assert sharded == pytest.approx(single, abs=1e-4)
    assert (tmp_path / "fsdp2" / "model" / "merged" / "model.safetensors").is_file()
