"""The comparison report on hand-made job dirs: per-arm numbers, paired differences, costs, files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rlhf.compare.report import collect, paired_differences, stage_costs, write_compare_report

# Four held-out prompts. SFT gold 0.5 everywhere; arm "a" gains 0.1 on every prompt, arm "b" 0.1, 0.3, 0.1, 0.3.
SFT = {"p0": 0.5, "p1": 0.5, "p2": 0.5, "p3": 0.5}
FINAL = {"a": {"p0": 0.6, "p1": 0.6, "p2": 0.6, "p3": 0.6}, "b": {"p0": 0.6, "p1": 0.8, "p2": 0.6, "p3": 0.8}}


def make_job(sweep: Path, arm: str, seed: int = 0) -> Path:
    job = sweep / f"{arm}_seed{seed}"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(f"- arm={arm}\n- seed={seed}\n- experiment=compare\n")
    (job / "frontier").mkdir()
    points = [{"checkpoint": "sft", "gold": 0.5, "kl": 0.0, "sqrt_kl": 0.0, "proxy": 0.1},
              {"checkpoint": "final", "gold": sum(FINAL[arm].values()) / 4, "kl": 4.0, "sqrt_kl": 2.0, "proxy": 0.9}]
    (job / "frontier" / "frontier.json").write_text(json.dumps({
        "mode": "gold", "metric": "gold", "policy": "ppo", "points": points, "sft_scores": SFT,
        "final_scores": FINAL[arm], "final_kl": {"p0": 2.0, "p1": 4.0, "p2": 6.0, "p3": 4.0},
        "training": {"samples": 192, "tokens": 5000}}))
    (job / "evaluate").mkdir()
    (job / "evaluate" / "summary.json").write_text(json.dumps(
        {"win_rate_ppo_vs_sft": {"win_rate": 1.0, "ci_low": 1.0, "ci_high": 1.0}}))
    (job / "stage_times.json").write_text(json.dumps({
        "sft": {"seconds": 100.0, "peak_rss_bytes": 9e9, "shared": True},
        "ppo": {"seconds": 120.0, "peak_rss_bytes": 3e9, "shared": False},
        "evaluate": {"seconds": 60.0, "peak_rss_bytes": 2e9, "shared": False}}))
    return job


def test_per_arm_numbers_and_costs(tmp_path):
    make_job(tmp_path, "b")
    make_job(tmp_path, "a")
    (tmp_path / "c_seed0").mkdir()                    # not finished: no frontier.json, not in the report
    results = collect(tmp_path)
    assert [r["arm"] for r in results] == ["a", "b"]
    a, b = results
    assert a["score"] == pytest.approx(0.6) and a["score_ci"] == pytest.approx([0.6, 0.6])   # no spread: CI a point
    assert b["score"] == pytest.approx(0.7) and 0.6 <= b["score_ci"][0] <= 0.7 <= b["score_ci"][1] <= 0.8
    assert b["gain"] == pytest.approx(0.2) and b["sft_score"] == 0.5
    assert a["kl"] == pytest.approx(4.0) and a["win_rate"] == 1.0 and a["samples"] == 192
    assert a["seconds"] == 180.0 and a["peak_rss_gb"] == pytest.approx(3.0)   # own stages only; sft is shared
    assert stage_costs(tmp_path / "a_seed0")["shared"] == {"sft": 100.0}


def test_paired_difference_of_known_per_prompt_values(tmp_path):
    make_job(tmp_path, "a")
    make_job(tmp_path, "b")
    make_job(tmp_path, "a", seed=1)                   # another seed: paired only with arms of seed 1
    [row] = paired_differences(collect(tmp_path)[:2])
    # a - b = 0, -0.2, 0, -0.2: mean -0.1; a bootstrap mean of these lies in [-0.2, 0]
    assert (row["arm_a"], row["arm_b"], row["prompts"]) == ("a", "b", 4)
    assert row["difference"] == pytest.approx(-0.1) and -0.2 - 1e-9 <= row["ci_low"] <= -0.1 <= row["ci_high"] <= 1e-9
    assert len(paired_differences(collect(tmp_path))) == 1


def test_a_difference_whose_ci_excludes_zero_names_the_arm_ahead(tmp_path):
    make_job(tmp_path, "a")
    a = collect(tmp_path)[0]
    shifted = {**a, "arm": "z", "per_prompt": {k: v - 0.05 for k, v in a["per_prompt"].items()}}
    [row] = paired_differences([a, shifted])
    assert row["difference"] == pytest.approx(0.05) and row["ci_low"] == pytest.approx(0.05)
    assert row["verdict"] == "a ahead"


def test_report_files(tmp_path):
    make_job(tmp_path, "a")
    make_job(tmp_path, "b")
    paths = write_compare_report(tmp_path)
    for name in ("report.md", "report.html", "compare.csv", "pairs.csv", "frontier.csv", "figures/frontier.png",
                 "figures/final.png", "figures/proxy_gold.png"):
        assert (tmp_path / name).is_file(), name
    with paths["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["arm"], float(r["score"])) for r in rows] == [("a", pytest.approx(0.6)), ("b", pytest.approx(0.7))]
    assert len(list(csv.DictReader(paths["frontier"].open()))) == 4
    assert "| a | b | 4 | -0.1000 |" in (tmp_path / "report.md").read_text()


def test_no_finished_arm_writes_nothing(tmp_path):
    (tmp_path / "ppo_seed0").mkdir()
    assert write_compare_report(tmp_path) is None and not (tmp_path / "report.md").exists()
