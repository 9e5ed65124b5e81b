"""Fingerprint of what the training stages compute, to prove a refactor changed nothing.

Runs the demo pipeline's SFT and reward stages for a few steps (hashes of the exported weights),
then PPO for a few steps from those artifacts in four variants (value-head / separate critic x
LoRA / full fine-tuning) and keeps every logged metric of every step except wall times. Run it
before and after a change on the same machine and compare the two JSON files:

    python bench/behaviour_fingerprint.py --out runs/fingerprint/before.json
    python bench/behaviour_fingerprint.py --out runs/fingerprint/after.json --compare runs/fingerprint/before.json
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "value_head_lora": ["ppo.groups.peft=lora", "ppo.overrides.stage.module.critic.kind=value_head"],
    "separate_lora": ["ppo.groups.peft=lora", "ppo.overrides.stage.module.critic.kind=separate"],
    "value_head_full": ["ppo.groups.peft=none", "ppo.overrides.stage.module.critic.kind=value_head"],
    "separate_full": ["ppo.groups.peft=none", "ppo.overrides.stage.module.critic.kind=separate"],
}


def pipeline(run_dir: Path, overrides: list[str]) -> None:
    command = [sys.executable, "-m", "rlhf.pipeline", f"run_dir={run_dir}", *overrides]
    env = dict(os.environ, WANDB_MODE="offline")
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-4000:]}")


def folder_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.safetensors"))}


def step_metrics(stage_dir: Path) -> list[dict[str, float]]:
    """Every logged value per step from the CSV logger, wall times left out."""
    files = sorted(stage_dir.rglob("metrics.csv"))
    rows = []
    for row in csv.DictReader(files[-1].open()):
        kept = {k: float(v) for k, v in row.items() if v not in ("", None) and not k.startswith("time/")}
        rows.append(kept)
    return rows


def fingerprint(work: Path, steps: int, base: Path | None = None) -> dict:
    """base: SFT/RM artifacts of an earlier fingerprint to start PPO from (then only PPO runs here)."""
    if base is None:
        base = work / "base"
        pipeline(base, ["stages=[sft,sample,annotate,reward]", f"sft.overrides.trainer.max_steps={steps}",
                        "sample.prompts.n=8", f"+reward.overrides.trainer.max_steps={steps}"])
    out = {"sft": folder_hashes(base / "sft" / "model"), "reward": folder_hashes(base / "reward" / "model"), "ppo": {}}
    for name, overrides in VARIANTS.items():
        run_dir = work / name
        pipeline(run_dir, ["stages=[ppo]", f"artifacts.sft={base / 'sft' / 'model' / 'merged'}",
                           f"artifacts.reward={base / 'reward' / 'model' / 'merged'}",
                           f"ppo.overrides.trainer.max_steps={steps}", *overrides])
        out["ppo"][name] = {"metrics": step_metrics(run_dir / "ppo"), "export": folder_hashes(run_dir / "ppo" / "model")}
    return out


def differences(before: dict, after: dict) -> list[str]:
    found = []
    for stage in ("sft", "reward"):
        if before[stage] != after[stage]:
            found.append(f"{stage} export differs")
    for name, old in before["ppo"].items():
        new = after["ppo"].get(name)
        if new is None:
            found.append(f"ppo {name} missing")
            continue
        if old["metrics"] != new["metrics"]:
            found.append(f"ppo {name} metrics differ")
        if old["export"] != new["export"]:
            found.append(f"ppo {name} export differs")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--work", type=Path, default=None, help="run dirs (default: next to --out)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--compare", type=Path, default=None, help="an earlier fingerprint to compare with")
    parser.add_argument("--base", type=Path, default=None, help="reuse the SFT/RM stages of an earlier run dir")
    args = parser.parse_args()
    work = args.work or args.out.with_suffix("")
    result = fingerprint(work.resolve(), args.steps, args.base.resolve() if args.base else None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    report = {"out": str(args.out), "ppo_steps": args.steps}
    if args.compare:
        report["differences"] = differences(json.loads(args.compare.read_text()), result)
        report["identical"] = not report["differences"]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
