"""evaluate.mode: accuracy (rlhf/pipeline_accuracy.py) and the RLVR recipes: the report's numbers on a hand-made
generations set, both recipes' stages composing and building, and experiment=rlvr end to end on the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
from hydra import compose, initialize_config_dir

from rlhf.config.validation import validate_config
from rlhf.core.errors import ConfigError
from rlhf.evaluate.accuracy import load_samples, reward_node, score_samples
from rlhf.pipeline import compose_training_stage, evaluate_mode
from rlhf.pipeline_accuracy import (AccuracyEvalConfig, accuracy_config, accuracy_headline_metrics, accuracy_report,
                                    held_out_records, report_sections)
from rlhf.rewards.build import build_reward

REPO = Path(__file__).resolve().parents[1]

# Four held-out prompts (answers 5, 6, 7, 8; levels 1, 1, 2, 2). Greedy correctness per prompt:
#   SFT 1 0 0 1 (accuracy 0.5),  policy 1 1 0 1 (0.75),  paired differences 0 1 0 0 -> gain 0.25.
# Two sampled responses per prompt (correct ones): SFT 1/2 0/2 0/2 2/2, policy 2/2 1/2 0/2 2/2.
ANSWERS, LEVELS = (5, 6, 7, 8), (1, 1, 2, 2)
GREEDY = {"sft": (1, 0, 0, 1), "ppo": (1, 1, 0, 1)}
SAMPLED = {"sft": ((1, 0), (0, 0), (0, 0), (1, 1)), "ppo": ((1, 1), (1, 0), (0, 0), (1, 1))}


def response(answer: int, correct: int) -> str:
    return f"3 + 2 = {answer if correct else answer + 1}\n#### {answer if correct else answer + 1}"


def write_rows(path: Path, per_prompt: list[tuple]) -> Path:
    rows = [{"id": f"p{i}", "prompt": [{"role": "user", "content": f"question {i}"}], "response": response(a, c),
             "metadata": {"id": f"p{i}", "answer": a, "level": lv}}
            for i, (a, lv, flags) in enumerate(zip(ANSWERS, LEVELS, per_prompt)) for c in flags]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_accuracy_report_numbers_on_a_hand_made_generations_set(tmp_path):
    reward = build_reward(reward_node("math_answer"), key="evaluate.reward")
    scored = {"greedy": {}, "sampled": {}}
    for name in ("sft", "ppo"):
        greedy = write_rows(tmp_path / f"g_{name}.jsonl", [(c,) for c in GREEDY[name]])
        sampled = write_rows(tmp_path / f"s_{name}.jsonl", list(SAMPLED[name]))
        scored["greedy"][name] = score_samples(load_samples(greedy), reward)
        scored["sampled"][name] = score_samples(load_samples(sampled), reward)
    summary = accuracy_report(scored, "ppo", k=2, resamples=200, seed=0)

    sft, ppo = summary["accuracy"]["sft"]["all"], summary["accuracy"]["ppo"]["all"]
    assert summary["n_prompts"] == 4
    assert sft["accuracy"] == 0.5 and ppo["accuracy"] == 0.75
    # clustered SE over 4 prompts: sqrt(Σ (m_i - p)² / P²) = sqrt(4 · 0.25 / 16) = 0.25 for SFT
    assert sft["se"] == pytest.approx(0.25) and sft["ci95"] == pytest.approx([0.5 - 0.49, 0.5 + 0.49])
    assert ppo["se"] == pytest.approx((0.75 / 16) ** 0.5)
    gain = summary["accuracy_gain_ppo_minus_sft"]
    # d = 0 1 0 0: mean 0.25, sample variance 0.75 / 3 = 0.25, SE sqrt(0.25 / 4) = 0.25
    assert gain["n"] == 4 and gain["mean_gain"] == pytest.approx(0.25) and gain["se"] == pytest.approx(0.25)
    assert gain["ci_normal"] == pytest.approx([0.25 - 0.49, 0.25 + 0.49])
    assert 0.0 <= gain["ci_bootstrap"][0] <= 0.25 <= gain["ci_bootstrap"][1] <= 1.0
    assert gain["subsets"]["level"]["1"]["mean_gain"] == pytest.approx(0.5)
    assert gain["subsets"]["level"]["2"]["mean_gain"] == 0.0
    assert summary["accuracy"]["sft"]["subsets"]["level"]["1"]["accuracy"] == 0.5

    sft_k, ppo_k = summary["sampled"]["sft"]["all"], summary["sampled"]["ppo"]["all"]
    assert sft_k["mean@2"] == pytest.approx(0.375) and sft_k["pass@2"] == pytest.approx(0.5)
    assert ppo_k["mean@2"] == pytest.approx(0.625) and ppo_k["pass@2"] == pytest.approx(0.75)
    assert sft_k["pass@1"] == pytest.approx(0.375)
    assert summary["mean_at_k_gain_ppo_minus_sft"]["mean_gain"] == pytest.approx(0.25)

    headline = accuracy_headline_metrics(summary)
    assert headline["eval/accuracy_sft"] == 0.5 and headline["eval/accuracy_policy"] == 0.75
    assert headline["eval/accuracy_gain"] == pytest.approx(0.25)
    assert headline["eval/accuracy_gain_ci_low"] == gain["ci_bootstrap"][0]
    assert headline["eval/pass@2_policy"] == pytest.approx(0.75) and headline["eval/mean@2_sft"] == pytest.approx(0.375)
    summary.update(reward="math_answer", part="math_answer", threshold=0.5)
    titles = [t.title for t in report_sections(summary)[0].tables]
    assert titles == ["Held-out accuracy", "Paired gain, policy - SFT", "Per level"]


def test_held_out_records_carry_their_metadata_and_ids():
    spec = AccuracyEvalConfig(prompts={"builtin": "arithmetic", "split": "test", "n": 6})
    records = held_out_records(spec, seed=0)
    assert len(records) == 6 and {r["metadata"]["level"] for r in records} == {1, 2, 3}
    assert all(r["metadata"]["id"] == r["id"] and isinstance(r["metadata"]["answer"], int) for r in records)


@pytest.fixture
def pipeline_cfg(tmp_path):
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        yield lambda *overrides: compose("pipeline", overrides=[
            "model=tiny", f"run_dir={tmp_path}/run", "paths.root_dir=" + str(REPO),
            f"paths.output_dir={tmp_path}", *overrides])


@pytest.mark.parametrize("recipe", ["rlvr", "rlvr_gsm8k"])
def test_rlvr_recipes_compose_validate_and_build_without_a_reward_model(recipe, pipeline_cfg):
    """sft -> ppo -> evaluate: SFT on `#### N` solutions, GRPO on prompts with answers and math_answer (no
    reward-model path to wire), evaluate in accuracy mode on held-out prompts with their metadata."""
    cfg = pipeline_cfg(f"experiment={recipe}")
    assert list(cfg.stages) == ["sft", "ppo", "evaluate"] and evaluate_mode(cfg) == "accuracy"
    built = {}
    for stage in ("sft", "ppo"):
        stage_cfg = compose_training_stage(cfg, stage, None)
        validate_config(stage_cfg)
        built[stage] = (stage_cfg, hydra.utils.instantiate(stage_cfg.stage.module))
    ppo_cfg, ppo = built["ppo"]
    assert ppo.cfg.algorithm.name == "grpo" and ppo.cfg.critic.kind == "none"
    assert ppo_cfg.reward_fn.fn._target_ == "rlhf.rewards.verifiable.MathAnswerReward"
    assert "path" not in ppo_cfg.reward_fn
    spec = accuracy_config(cfg)
    assert spec.reward == "math_answer" and not spec.decoding.do_sample and spec.sampling.do_sample
    records = held_out_records(spec, cfg.seed)
    assert records and all("answer" in r["metadata"] for r in records)
    if recipe == "rlvr":
        assert built["sft"][0].data.sources[0].builtin == "arithmetic"
        assert {r["metadata"]["level"] for r in records} == {1, 2}          # the recipe leaves out level 3 (experiments/README.md)
    else:
        assert built["sft"][0].data.sources[0].path.endswith("sft/gsm8k_train.jsonl.gz")
        assert cfg.evaluate.prompts.path.endswith("eval/gsm8k_test.jsonl.gz") and len(records) == 32
        assert "####" in records[0]["metadata"]["answer"]


def test_an_unknown_evaluate_mode_is_a_config_error(pipeline_cfg):
    with pytest.raises(ConfigError, match="evaluate.mode"):
        evaluate_mode(pipeline_cfg("evaluate.mode=accurcy"))


TINY_RLVR = [
    "experiment=rlvr", "model=tiny", "sft.overrides.trainer.max_steps=1", "sft.overrides.data.sources.0.n=16",
    "ppo.overrides.trainer.max_steps=2", "ppo.overrides.stage.module.rollout.max_new_tokens=8",
    "ppo.overrides.stage.module.rollout.n_samples_per_prompt=2", "ppo.overrides.data.sources.0.n=8",
    "evaluate.prompts.n=4", "evaluate.k=2", "evaluate.decoding.max_new_tokens=8",
    "evaluate.sampling.max_new_tokens=8", "evaluate.bootstrap=50",
]


def test_tiny_rlvr_pipeline_writes_held_out_accuracy_of_sft_and_policy(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "rlhf.pipeline", f"run_dir={run_dir}", *TINY_RLVR],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (run_dir / "reward").exists() and not (run_dir / "sample").exists()
    out = run_dir / "evaluate"
    for name in ("report.md", "report.html", "summary.json", "generations_sft.jsonl", "generations_ppo.jsonl",
                 "samples_sft.jsonl", "samples_ppo.jsonl"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "accuracy" and summary["n_prompts"] == 4 and summary["k"] == 2
    for name in ("sft", "ppo"):
        assert set(summary["accuracy"][name]["all"]) >= {"accuracy", "ci95", "se"}
        assert set(summary["sampled"][name]["all"]) >= {"pass@1", "pass@2", "mean@2"}
        assert summary["sampled"][name]["all"]["n_samples"] == 8
    gain = summary["accuracy_gain_ppo_minus_sft"]
    assert gain["n"] == 4 and len(gain["ci_bootstrap"]) == 2 and "level" in gain["subsets"]
    rows = [json.loads(line) for line in (out / "generations_ppo.jsonl").read_text().splitlines()]
    assert all("answer" in r["metadata"] and "level" in r["metadata"] for r in rows)
    final = json.loads((run_dir / "final_metrics.json").read_text())
    assert final["eval/accuracy_sft"] == summary["accuracy"]["sft"]["all"]["accuracy"]
    assert final["eval/accuracy_gain"] == pytest.approx(gain["mean_gain"])
    assert {"eval/accuracy_policy", "eval/accuracy_gain_ci_low", "eval/pass@2_policy"} <= set(final)
    assert "Per level" in (out / "report.md").read_text()
