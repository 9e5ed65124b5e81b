"""Helpers that run the real entry point (`python -m rlhf.train`) on the tiny model in a subprocess."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def write_sft_jsonl(path: Path, n: int = 8) -> Path:
    rows = [{"prompt": f"Say the number {i} in words.", "response": f"The number is {i}."} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def sft_command(data: Path, run_dir: Path, *extra: str) -> list[str]:
    """One batch per epoch (8 records, batch 8, no validation), so every stop is at an epoch boundary."""
    return [sys.executable, "-m", "rlhf.train", "model=tiny", "data=jsonl", f"data.sources.0.path={data}",
            "data.max_length=48", "data.val_fraction=0", "data.batch_size=8", "trainer=debug",
            "trainer.max_steps=-1", "logger=csv", f"hydra.run.dir={run_dir}", *extra]


def run_sft(data: Path, run_dir: Path, *extra: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(sft_command(data, run_dir, *extra), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def logged_metric(run_dir: Path, name: str) -> dict[int, float]:
    """step -> value of `name` over every csv/version_*/metrics.csv of a run dir (a resume adds a version)."""
    out = {}
    for metrics in sorted(run_dir.glob("csv/version_*/metrics.csv")):
        with metrics.open() as handle:
            for row in csv.DictReader(handle):
                if row.get(name):
                    out[int(row["step"])] = float(row[name])
    return out


def logged_losses(run_dir: Path) -> dict[int, float]:
    return logged_metric(run_dir, "train/loss")
