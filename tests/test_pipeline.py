"""The pipeline on the tiny model: every stage's artifact, skip-if-exists resume, artifact wiring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rlhf.pipeline import artifact_path, compose_training_stage, stage_dir

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "model=tiny", "sft.overrides.trainer.max_steps=1", "sft.overrides.data.max_length=96",
    "sample.prompts.n=4", "sample.k=3", "sample.decoding.max_new_tokens=8",
    "reward.overrides.data.max_length=96", "ppo.overrides.trainer.max_steps=2",
    "ppo.overrides.data.batch_size=2",
    "ppo.overrides.stage.module.rollout.max_new_tokens=8", "ppo.overrides.stage.module.update.epochs=1",
    "evaluate.prompts.n=4", "evaluate.decoding.max_new_tokens=8", "evaluate.bootstrap=50",
]


def run_pipeline(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "rlhf.pipeline", f"run_dir={run_dir}", *TINY, *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_tiny_pipeline_end_to_end_then_resume_skips_finished_stages(tmp_path):
    run_dir = tmp_path / "run"
    first = run_pipeline(run_dir, "stages=[sft,sample,annotate]")
    assert first.returncode == 0, first.stderr[-3000:]
    sft_weights = run_dir / "sft" / "model" / "merged" / "model.safetensors"
    assert sft_weights.is_file()
    stamp = sft_weights.stat().st_mtime_ns
    samples = read_jsonl(run_dir / "sample" / "samples.jsonl")
    assert len(samples) == 4 and all(len(row["responses"]) == 3 for row in samples)
    rankings = read_jsonl(run_dir / "annotate" / "rankings.jsonl")
    assert all(sorted(row["ranks"]) == [0, 1, 2] for row in rankings)   # a strict order of K=3 (temperature 0)
    assert not (run_dir / "reward").exists()

    # The "stopped" pipeline is run again with every stage: the finished ones are skipped.
    second = run_pipeline(run_dir)
    assert second.returncode == 0, second.stderr[-3000:]
    assert sft_weights.stat().st_mtime_ns == stamp
    assert "stage sft: artifact" in second.stderr + second.stdout
    stats = json.loads((run_dir / "reward" / "model" / "merged" / "reward_stats.json").read_text())
    assert stats["kind"] == "preference" and stats["std"] >= 0
    assert (run_dir / "ppo" / "model" / "merged" / "config.json").is_file()
    assert len(read_jsonl(run_dir / "ppo" / "samples.jsonl")) == 2 * 2       # 2 steps x 2 rollouts
    for name in ("report.md", "report.html", "summary.json", "judgments.jsonl", "generations_sft.jsonl",
                 "generations_ppo.jsonl", "overoptimisation.png"):
        assert (run_dir / "evaluate" / name).is_file(), name
    summary = json.loads((run_dir / "evaluate" / "summary.json").read_text())
    win = summary["win_rate_ppo_vs_sft"]
    assert win["wins"] + win["losses"] + win["ties"] == 4
    assert [p["step"] for p in summary["overoptimisation"]] == [0, 1]
    assert set(summary["gold_criteria_mean"]) == {"sft", "ppo"}
    assert set(summary["gold_criteria_mean"]["ppo"]) >= {"relevance", "completeness", "courtesy"}
    final = json.loads((run_dir / "final_metrics.json").read_text())
    assert final["eval/win_rate_ppo_vs_sft"] == pytest.approx(win["win_rate"])


@pytest.fixture
def pipeline_cfg(tmp_path):
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("pipeline", overrides=["model=tiny", f"run_dir={tmp_path}", f"shared_dir={tmp_path}/shared",
                                             "paths.root_dir=" + str(REPO), "paths.output_dir=" + str(tmp_path)])
        yield cfg


def test_reward_and_ppo_inputs_are_wired_from_earlier_artifacts(pipeline_cfg, tmp_path):
    reward = compose_training_stage(pipeline_cfg, "reward", "/models/sft")
    ppo = compose_training_stage(pipeline_cfg, "ppo", "/models/sft")
    assert reward.data.sources[0].path == str(tmp_path / "annotate" / "rankings.jsonl")
    assert reward.model.source == "/models/sft" and reward.paths.output_dir == str(tmp_path / "reward")
    assert ppo.reward_fn.path == str(tmp_path / "reward" / "model" / "merged")
    assert ppo.stage.module.critic.kind == "value_head"


def test_artifacts_are_plain_command_line_overrides(tmp_path):
    """`artifacts.sft=DIR` works without Hydra's `+`: every stage has a null slot in the config."""
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("pipeline", overrides=["model=tiny", f"run_dir={tmp_path}", "artifacts.sft=/models/my-sft",
                                             "artifacts.reward=/models/my-rm"])
    assert artifact_path(cfg, "sft") == Path("/models/my-sft")
    assert artifact_path(cfg, "reward") == Path("/models/my-rm")
    assert artifact_path(cfg, "sample") == tmp_path / "sample" / "samples.jsonl"   # null: this run's own
    assert set(cfg.artifacts) >= set(cfg.stages) | {"pre_sft", "reward_absolute"}


def test_given_artifact_replaces_a_stage_and_shared_stages_move(pipeline_cfg, tmp_path):
    cfg = pipeline_cfg.copy()
    OmegaConf.set_struct(cfg, False)
    cfg.artifacts = {"sft": "/models/my-sft"}
    cfg.shared_stages = ["reward"]
    assert artifact_path(cfg, "sft") == Path("/models/my-sft")
    assert stage_dir(cfg, "reward") == tmp_path / "shared" / "reward"
    assert stage_dir(cfg, "ppo") == tmp_path / "ppo"
    ppo = compose_training_stage(cfg, "ppo", "/models/my-sft")
    assert ppo.reward_fn.path == str(tmp_path / "shared" / "reward" / "model" / "merged")


TRAINING_STAGES = ("pre_sft", "sft", "reward", "reward_absolute", "ppo")


@pytest.mark.parametrize("recipe", ["ice_grt", "crs", "qwen"])
def test_every_recipe_stage_composes_validates_and_builds(recipe, tmp_path):
    """Each training stage of each recipe passes the same validation `rlhf.train.run` applies and
    its LightningModule constructs (the constructors check loss, critic and KL keys), so a recipe
    cannot fail at its 3rd stage after an hour of CPU, as ice_grt's reward stage once did."""
    import hydra

    from rlhf.config.validation import validate_config

    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("pipeline", overrides=["model=tiny", f"experiment={recipe}", f"run_dir={tmp_path}",
                                             f"shared_dir={tmp_path}/shared", "paths.root_dir=" + str(REPO),
                                             "paths.output_dir=" + str(tmp_path)])
        built = {}
        for stage in cfg.stages:
            if stage not in TRAINING_STAGES:
                continue
            stage_cfg = compose_training_stage(cfg, stage, None)
            validate_config(stage_cfg)
            built[stage] = (stage_cfg, hydra.utils.instantiate(stage_cfg.stage.module))
    assert {"sft", "reward", "ppo"} <= set(built)
    reward_cfg, reward = built["reward"]
    ppo_cfg, ppo = built["ppo"]
    if recipe == "ice_grt":
        assert dict(reward_cfg.stage.module.loss) == {"name": "margin_ranking", "margin": 1.0, "group_mean": False}
        assert reward_cfg.data.pairs == "top2_bottom2" and cfg.sample.k == 5
        assert ppo.cfg.critic.kind == "separate" and ppo.cfg.update.gamma == 0.95
    if recipe == "crs":
        assert "reward_absolute" in built and ppo_cfg.reward_fn.w == 0.25
        assert ppo.cfg.score.clip == 4.0
    if recipe == "qwen":
        assert ppo.cfg.update.critic_warmup_steps == 50 and ppo.cfg.rollout.n_samples_per_prompt == 2
        assert ppo.cfg.kl.init_beta == 0.04 and ppo.cfg.score.normalize is True


ALGORITHM_RECIPES = ("grpo", "dr_grpo", "dapo", "gspo", "rloo", "reinforce_pp", "remax")


@pytest.mark.parametrize("recipe", ALGORITHM_RECIPES)
def test_algorithm_recipes_swap_only_the_rl_algorithm(recipe, tmp_path):
    """experiment=<algorithm>: the demo's stages before RL (shared by every algorithm recipe) and
    the demo's RL settings, with the algorithm's estimator and no critic; the RL module builds."""
    import hydra

    from rlhf.config.validation import validate_config

    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("pipeline", overrides=["model=tiny", f"experiment={recipe}", f"run_dir={tmp_path}",
                                             "paths.root_dir=" + str(REPO), "paths.output_dir=" + str(tmp_path)])
        demo = compose("pipeline", overrides=["model=tiny", f"run_dir={tmp_path}", "paths.root_dir=" + str(REPO),
                                              "paths.output_dir=" + str(tmp_path)])
        assert list(cfg.shared_stages) == ["sft", "sample", "annotate", "reward"]
        assert cfg.shared_dir.endswith("demo_algorithms_seed0")
        for stage in ("sft", "sample", "annotate", "reward"):
            assert cfg[stage] == demo[stage], stage
        stage_cfg = compose_training_stage(cfg, "ppo", None)
        validate_config(stage_cfg)
        module = hydra.utils.instantiate(stage_cfg.stage.module)
    assert module.cfg.algorithm.name == recipe and module.cfg.critic.kind == "none"
    rows = module.cfg.rollout.n_samples_per_prompt * stage_cfg.data.batch_size
    assert rows == demo.ppo.overrides.data.batch_size  # the demo PPO's rollouts per step
    assert module.cfg.kl.init_beta == demo.ppo.overrides.stage.module.kl.init_beta
