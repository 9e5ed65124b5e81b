"""The multirun summary: one CSV + markdown table and one plot over the finished jobs of a sweep dir."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from rlhf.sweep_summary import collect_jobs, varying_keys, write_final_metrics, write_sweep_summary


def make_job(sweep: Path, name: str, w: str, metrics: dict | None) -> None:
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(f"- experiment=crs\n- ppo.overrides.reward_fn.w={w}\n")
    if metrics is not None:
        write_final_metrics(job, metrics)


def test_sweep_table_has_one_row_per_finished_job_keyed_by_what_varies(tmp_path):
    sweep = tmp_path / "sweep"
    make_job(sweep, "1", "0.5", {"eval/gold_gain": 0.02, "eval/win_rate_ppo_vs_sft": 0.6})
    make_job(sweep, "0", "0.25", {"eval/gold_gain": -0.01, "eval/win_rate_ppo_vs_sft": 0.45})
    make_job(sweep, "2", "0.75", None)   # still running / failed: no final metrics, not in the table

    rows = collect_jobs(sweep)
    assert [r["job"] for r in rows] == ["0", "1"]
    assert varying_keys(rows, {"eval/gold_gain", "eval/win_rate_ppo_vs_sft"}) == ["ppo.overrides.reward_fn.w"]

    paths = write_sweep_summary(sweep, metric="eval/gold_gain")
    with paths["csv"].open() as handle:
        table = list(csv.DictReader(handle))
    assert [(r["ppo.overrides.reward_fn.w"], float(r["eval/gold_gain"])) for r in table] == [("0.25", -0.01), ("0.5", 0.02)]
    assert all(r["experiment"] == "crs" for r in table)
    markdown = paths["markdown"].read_text().splitlines()
    assert markdown[0].startswith("| job | experiment | ppo.overrides.reward_fn.w |")
    assert markdown[2] == "| 0 | crs | 0.25 | -0.01 | 0.45 |"
    assert paths["plot"].stat().st_size > 0


def test_sweep_without_finished_jobs_writes_nothing(tmp_path):
    make_job(tmp_path, "0", "0.25", None)
    assert write_sweep_summary(tmp_path) is None
    assert not (tmp_path / "sweep_summary.csv").exists()


def test_final_metrics_round_trip(tmp_path):
    path = write_final_metrics(tmp_path / "job", {"b": 2.0, "a": 1})
    assert json.loads(path.read_text()) == {"a": 1, "b": 2.0}
