"""One process vs DDP vs FSDP2 (2 CPU processes, gloo) give the same PPO step at a fixed seed.

Why they can agree: rollouts are sampled from per-(prompt, step) hashed seeds (rlhf/rl/rollout.py),
the prompt loader gives the 2 ranks the same 4 prompts that one process sees in one batch, and
PPOModule computes every statistic and loss weight over the tokens of all ranks. What is left is
float summation order (batched matmuls of different shapes), hence the tolerances below.

One PPO step (2 updates) is compared: metrics and the exported weights. Later steps are not
comparable token for token: the near-uniform tiny policy gives every token a CDF interval of
~2e-5, so a 1e-7 weight difference flips some samples and the runs part ways (measured).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KEYS = ("train/reward_raw_mean", "train/kl_objective", "train/kl_per_token", "train/entropy", "train/value_loss",
        "train/policy_loss", "train/approx_kl", "train/response_length", "train/beta")
REL_TOL, ABS_TOL = 1e-4, 1e-5  # stated tolerance on metrics: float reduction order only
# Max |Δ| of any exported weight after one step: 1 % of one Adam step at lr 1e-2. Adam divides by
# |g| + 1e-8, so an element whose gradient is ~1e-8 turns reduction-order noise into a visible
# step (measured: DDP < 1e-5; FSDP2 2.1e-5 on one element, ~1e-8 typical). Old log-probs taken from
# the KV-cache sampling forwards (rollout.logprobs_from_generation, default) round differently for a
# batch of 4 rows than for 2 per rank: measured DDP 1.06e-4 on one element, so 2.5 % of one step.
WEIGHT_TOL = 2.5e-4


def run_ppo(tmp_path: Path, name: str, prompts: Path, *overrides: str, keys=KEYS) -> list[dict]:
    out = tmp_path / name
    cmd = [sys.executable, "-m", "rlhf.train", "stage=ppo", "model=tiny", "peft=none", "data=prompts_jsonl",
           f"data.sources.0.path={prompts}", "data.shuffle=false", "trainer=debug", "trainer.max_steps=1",
           "trainer.gradient_clip_val=null", "logger=csv", "callbacks=none", "stage.module.rollout.max_new_tokens=4",
           "stage.module.update.epochs=2", "stage.module.actor_optim.lr=1e-2", "stage.module.critic_optim.lr=1e-2",
           f"paths.log_dir={tmp_path}", f"hydra.run.dir={out}", *overrides]
    done = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    rows = list(csv.DictReader(next((out / "csv").rglob("metrics.csv")).open()))
    steps = [{k: float(r[k]) for k in keys} for r in rows if r.get("train/reward_raw_mean")]
    assert len(steps) == 1
    return steps


def weights(run_dir: Path, part: str) -> dict:
    from safetensors.torch import load_file

    return load_file(next((run_dir / "model" / part).glob("*.safetensors")))


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    words = ["apple", "river", "green", "seven", "music", "table", "window", "garden"]
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Write about {w}."}) + "\n" for i, w in enumerate(words)))
    return path


def assert_same(reference: list[dict], other: list[dict]) -> None:
    for step, (a, b) in enumerate(zip(reference, other)):
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=REL_TOL, abs=ABS_TOL), (step, key, a[key], b[key])


@pytest.fixture(scope="module")
def single(tmp_path_factory, prompts) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("runs")
    return root / "single", run_ppo(root, "single", prompts, "strategy=single", "trainer.devices=1", "data.batch_size=4")


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_processes_match_one(tmp_path, prompts, single, strategy):
    single_dir, single_steps = single
    multi = run_ppo(tmp_path, strategy, prompts, f"strategy={strategy}", "trainer.devices=2", "data.batch_size=2")
    assert_same(single_steps, multi)
    parts = ["merged"] if strategy == "fsdp2" else ["merged", "critic"]  # critic export: unsharded runs only
    for part in parts:
        a, b = weights(single_dir, part), weights(tmp_path / strategy, part)
        assert a.keys() == b.keys()
        for name in a:
            assert float((a[name] - b[name]).abs().max()) < WEIGHT_TOL, (part, name)


CRITIC_FREE_KEYS = tuple(k for k in KEYS if k != "train/value_loss") + ("train/advantage_std",)


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("algorithm, rows", [("grpo", 2), ("reinforce_pp", 4)])
@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_critic_free_two_processes_match_one(tmp_path, prompts, strategy, algorithm, rows):
    """Group statistics stay on the rank that holds the group (GRPO: 2 prompts x 4 samples, one
    prompt per rank); REINFORCE++'s global whitening gathers every rank's returns."""
    common = (f"algorithm={algorithm}", "stage.module.update.epochs=2")
    single = run_ppo(tmp_path, "single", prompts, "strategy=single", "trainer.devices=1", f"data.batch_size={rows}",
                     *common, keys=CRITIC_FREE_KEYS)
    multi = run_ppo(tmp_path, strategy, prompts, f"strategy={strategy}", "trainer.devices=2",
                    f"data.batch_size={rows // 2}", *common, keys=CRITIC_FREE_KEYS)
    assert_same(single, multi)
    a, b = weights(tmp_path / "single", "merged"), weights(tmp_path / strategy, "merged")
    for name in a:
        assert float((a[name] - b[name]).abs().max()) < WEIGHT_TOL, name
