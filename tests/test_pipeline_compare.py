"""experiment=compare end to end on the tiny model: one multirun, shared stages built once, every arm's snapshots
scored for the frontier, the report in the sweep dir; the same command again skips what has finished."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# PPO: 3 steps x 4 prompts x 1; GRPO: 3 x 2 x 2; DPO: 6 prompts x K = 2: 12 training samples each.
TINY_COMPARE = [
    "experiment=compare", "model=tiny", "sft.overrides.trainer.max_steps=1", "sft.overrides.data.max_length=96",
    "sample.prompts.n=6", "sample.k=2", "sample.decoding.max_new_tokens=8", "reward.overrides.data.max_length=96",
    "ppo.overrides.trainer.max_steps=3", "compare.rollouts_per_step=4", "compare.prompts_per_step=2",
    "compare.group_size=2", "ppo.overrides.stage.module.rollout.max_new_tokens=8",
    "ppo.overrides.stage.module.update.epochs=1", "++dpo.overrides.data.max_length=96",
    "++dpo.overrides.trainer.max_epochs=3", "evaluate.prompts.n=6", "evaluate.decoding.max_new_tokens=8",
    "evaluate.bootstrap=50",
]


def run_compare(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "rlhf.pipeline", "-m", "arm=ppo,grpo,dpo", f"paths.log_dir={tmp_path}",
                           *TINY_COMPARE, *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_tiny_comparison_writes_the_report_then_resumes_skipping_finished_arms(tmp_path):
    first = run_compare(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    sweep, shared = tmp_path / "compare" / "demo", tmp_path / "shared" / "demo_algorithms_seed0"
    for name in ("report.md", "report.html", "compare.csv", "pairs.csv", "frontier.csv", "figures/frontier.png"):
        assert (sweep / name).is_file(), name
    assert (shared / "reward" / "model" / "merged").is_dir() and not (sweep / "grpo_seed0" / "sft").exists()
    with (sweep / "compare.csv").open() as handle:
        rows = {r["arm"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {"ppo", "grpo", "dpo"}
    assert {int(r["samples"]) for r in rows.values()} == {12}                 # the budget, as generated
    for arm, policy in (("ppo", "ppo"), ("grpo", "ppo"), ("dpo", "dpo")):
        frontier = json.loads((sweep / f"{arm}_seed0" / "frontier" / "frontier.json").read_text())
        labels = [p["checkpoint"] for p in frontier["points"]]
        assert labels[0] == "sft" and labels[-1] == "final" and len(labels) == 4, labels   # 2 snapshots between
        assert frontier["points"][0]["kl"] == 0.0 and all(p["kl"] >= 0 for p in frontier["points"])
        gold = [row["gold_a"] for row in map(json.loads, (sweep / f"{arm}_seed0" / "evaluate" / "judgments.jsonl").open())]
        assert sorted(frontier["final_scores"].values()) == pytest.approx(sorted(gold))   # evaluate's own replies
        assert float(rows[arm]["kl"]) == pytest.approx(frontier["points"][-1]["kl"])
        assert (sweep / f"{arm}_seed0" / policy / "snapshots").is_dir()
    assert len(list(csv.DictReader((sweep / "pairs.csv").open()))) == 3
    assert len(list((sweep / "ppo_seed0" / "wandb").glob("offline-run-*"))) == 1   # one wandb run per arm
    assert len(list((sweep / "grpo_seed0" / "wandb").glob("offline-run-*"))) == 1

    # Stopped during grpo's frontier: the same command skips every finished stage and arm, and ends the report.
    stamp = (sweep / "ppo_seed0" / "frontier" / "frontier.json").stat().st_mtime_ns
    (sweep / "grpo_seed0" / "frontier" / "frontier.json").unlink()
    (sweep / "report.md").unlink()
    second = run_compare(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert "stage ppo: artifact" in log and "stage dpo: artifact" in log and "Trainer.fit" not in log
    assert (sweep / "ppo_seed0" / "frontier" / "frontier.json").stat().st_mtime_ns == stamp
    assert (sweep / "grpo_seed0" / "frontier" / "frontier.json").is_file() and (sweep / "report.md").is_file()
