"""experiment=dpo and experiment=dpo_iterative on the tiny model: DPO's inputs, the round dirs, each round
starting from the previous round's export, resume, and evaluate comparing the DPO export with SFT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
import yaml
from hydra import compose, initialize_config_dir

from rlhf.config.validation import validate_config
from rlhf.core.errors import ConfigError
from rlhf.pipeline import compose_training_stage, schedule

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "model=tiny", "sft.overrides.trainer.max_steps=1", "sft.overrides.data.max_length=96",
    "sample.prompts.n=4", "sample.k=3", "sample.decoding.max_new_tokens=8",
    "dpo.overrides.data.max_length=96", "dpo.overrides.trainer.max_steps=2",
    "evaluate.prompts.n=4", "evaluate.decoding.max_new_tokens=8", "evaluate.bootstrap=50",
]


def run_pipeline(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "rlhf.pipeline", f"run_dir={tmp_path / 'run'}",
                           f"shared_dir={tmp_path / 'shared'}", *TINY, *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def export_base(model_dir: Path) -> str:
    """The model a DPO export started from (and used as π_ref), as recorded in its metadata."""
    return json.loads((model_dir / "rlhf_metadata.json").read_text())["base"]


def trained_on(stage_dir: Path) -> str:
    return yaml.safe_load((stage_dir / "config_resolved.yaml").read_text())["data"]["sources"][0]["path"]


@pytest.fixture
def pipeline_cfg(tmp_path):
    """Composes configs/pipeline.yaml with overrides; Hydra stays initialised for the stages' own compose."""
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        yield lambda *overrides: compose("pipeline", overrides=[
            "model=tiny", f"run_dir={tmp_path}/run", f"shared_dir={tmp_path}/shared", "paths.root_dir=" + str(REPO),
            f"paths.output_dir={tmp_path}", *overrides])


def test_iterative_rounds_live_in_round_dirs_and_only_round_one_is_shared(pipeline_cfg, tmp_path):
    cfg = pipeline_cfg("experiment=dpo_iterative", "rounds=3")
    plan = [(name, round_cfg.run_dir, round_cfg.seed) for _, round_cfg, name in schedule(cfg)]
    run, shared = str(tmp_path / "run"), tmp_path / "shared"
    assert [name for name, _, _ in plan] == ["sft"] + [f"round_{r}/{s}" for r in (1, 2, 3)
                                                       for s in ("sample", "annotate", "dpo")] + ["evaluate"]
    assert [seed for name, _, seed in plan if name.endswith("/dpo")] == [0, 1, 2]
    stages = {name: (stage, round_cfg) for stage, round_cfg, name in schedule(cfg)}
    round_1 = compose_training_stage(stages["round_1/dpo"][1], "dpo", "/models/sft")
    round_3 = compose_training_stage(stages["round_3/dpo"][1], "dpo", "/models/round_2")
    # round 1's samples and annotations are experiment=dpo's (shared); later rounds have their own
    assert round_1.data.sources[0].path == str(shared / "annotate" / "rankings.jsonl")
    assert round_1.paths.output_dir == f"{run}/round_1/dpo"
    assert round_3.data.sources[0].path == f"{run}/round_3/annotate/rankings.jsonl"
    assert round_3.model.source == "/models/round_2" and round_3.seed == 2
    assert round_3.data.pairs == "all_pairs" and round_3.stage.module.reference == "cached"


def test_round_stages_that_train_no_policy_or_are_split_are_refused(pipeline_cfg):
    with pytest.raises(ConfigError, match="train no policy"):
        schedule(pipeline_cfg("rounds=2", "round_stages=[sample,annotate]"))
    with pytest.raises(ConfigError, match="follow each other"):
        schedule(pipeline_cfg("rounds=2", "round_stages=[sample,ppo]"))


def test_dpo_stage_composes_validates_and_builds(pipeline_cfg):
    cfg = pipeline_cfg("experiment=dpo", "dpo.overrides.data.pairs=top2_bottom2")
    stage_cfg = compose_training_stage(cfg, "dpo", None)
    validate_config(stage_cfg)
    module = hydra.utils.instantiate(stage_cfg.stage.module)
    assert module.kind == "sigmoid" and module.cfg.reference == "cached" and module.optim_cfg.lr == 1e-4
    assert stage_cfg.data.pairs == "top2_bottom2" and stage_cfg.data.sources[0].adapter == "grouped"


def test_dpo_pipeline_trains_on_the_annotations_and_evaluates_its_export_against_sft(tmp_path):
    result = run_pipeline(tmp_path, "experiment=dpo")
    assert result.returncode == 0, result.stderr[-3000:]
    run, shared = tmp_path / "run", tmp_path / "shared"
    assert not (run / "reward").exists() and not (run / "ppo").exists()
    assert trained_on(run / "dpo") == str(shared / "annotate" / "rankings.jsonl")
    assert export_base(run / "dpo" / "model" / "merged") == str(shared / "sft" / "model" / "merged")
    for name in ("report.md", "summary.json", "judgments.jsonl", "generations_sft.jsonl", "generations_dpo.jsonl",
                 "dpo_loss.png"):
        assert (run / "evaluate" / name).is_file(), name
    summary = json.loads((run / "evaluate" / "summary.json").read_text())
    win = summary["win_rate_dpo_vs_sft"]
    assert summary["policy"] == "dpo" and win["wins"] + win["losses"] + win["ties"] == 4
    assert set(summary["gold_mean"]) == {"sft", "dpo"} and summary["proxy_mean"] is None
    final = json.loads((run / "final_metrics.json").read_text())
    assert final["eval/win_rate_dpo_vs_sft"] == pytest.approx(win["win_rate"])


def test_iterative_dpo_round_two_samples_from_and_starts_from_round_one_then_resumes(tmp_path):
    first = run_pipeline(tmp_path, "experiment=dpo_iterative", "stages=[sft,sample,annotate,dpo]")
    assert first.returncode == 0, first.stderr[-3000:]
    run, shared = tmp_path / "run", tmp_path / "shared"
    sft, round_1, round_2 = (shared / "sft" / "model" / "merged", run / "round_1" / "dpo" / "model" / "merged",
                             run / "round_2" / "dpo" / "model" / "merged")
    assert export_base(round_1) == str(sft) and export_base(round_2) == str(round_1)
    assert trained_on(run / "round_2" / "dpo") == str(run / "round_2" / "annotate" / "rankings.jsonl")
    rounds = json.loads((run / "pipeline.json").read_text())
    assert rounds["round_1/policy"] == str(sft) and rounds["round_2/policy"] == str(round_1)
    assert len((run / "round_2" / "sample" / "samples.jsonl").read_text().splitlines()) == 4
    stamp = (round_1 / "model.safetensors").stat().st_mtime_ns

    # Stopped before round 2's export: the rerun skips round 1, finishes round 2 from its last.ckpt, evaluates it.
    for path in sorted(round_2.parent.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    second = run_pipeline(tmp_path, "experiment=dpo_iterative")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "stage round_1/dpo: artifact" in second.stderr + second.stdout
    assert (round_1 / "model.safetensors").stat().st_mtime_ns == stamp
    assert export_base(round_2) == str(round_1)
    summary = json.loads((run / "evaluate" / "summary.json").read_text())
    assert summary["policy"] == "dpo"
    assert json.loads((run / "pipeline.json").read_text())["round_2/dpo"] == str(round_2)
