"""experiment=compare and compare_rlvr: every arm composes, validates and builds; budgets are counted from the
configs and unequal ones are refused with the numbers; an unknown arm lists the known ones; scale=demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
from hydra import compose, initialize_config_dir

from rlhf.compare.budget import Budget, arm_budget, check_equal
from rlhf.compare.sweep import compose_arm, sweep_values
from rlhf.config.validation import validate_config
from rlhf.core.errors import ConfigError
from rlhf.pipeline import compose_training_stage, evaluated_policy, schedule

REPO = Path(__file__).resolve().parents[2]
DEMO_ARMS = ("ppo", "grpo", "dr_grpo", "gspo", "rloo", "reinforce_pp", "dpo", "dpo_iterative", "ice_grt", "crs", "qwen")
RLVR_ARMS = ("ppo", "grpo", "rloo", "reinforce_pp")


@pytest.fixture
def pipeline_cfg(tmp_path):
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        yield lambda *overrides: compose("pipeline", overrides=[
            "model=tiny", f"paths.output_dir={tmp_path}/job", "paths.root_dir=" + str(REPO),
            f"paths.log_dir={tmp_path}", *overrides])


@pytest.mark.parametrize("experiment,arms", [("compare", DEMO_ARMS), ("compare_rlvr", RLVR_ARMS)])
def test_every_arm_composes_validates_builds_and_has_the_same_budget(experiment, arms, pipeline_cfg):
    budgets = []
    for arm in arms:
        cfg = pipeline_cfg(f"experiment={experiment}", f"arm={arm}")
        policy = evaluated_policy(cfg)
        stage_cfg = compose_training_stage(cfg, policy, None)
        validate_config(stage_cfg)
        module = hydra.utils.instantiate(stage_cfg.stage.module)
        assert "policy_snapshots" in stage_cfg.callbacks and "wandb" in stage_cfg.logger   # the dashboards
        assert schedule(cfg)[-1][0] == "frontier" and cfg.task_name == arm
        if policy == "ppo" and arm not in ("ppo", "ice_grt", "crs", "qwen"):
            assert module.cfg.algorithm.name == arm and module.cfg.critic.kind == "none"
        budgets.append(arm_budget(arm, cfg))
    expected = 24 * 8 if experiment == "compare" else 48 * 16   # the demo PPO's rollouts; rlvr's GRPO's
    assert {b.samples for b in budgets} == {expected}
    check_equal(budgets)


def test_demo_arms_share_the_algorithm_recipes_stages(pipeline_cfg, tmp_path):
    shared = str(tmp_path / "shared" / "demo_algorithms_seed0")
    for arm in ("ppo", "grpo", "dpo", "qwen"):
        assert pipeline_cfg("experiment=compare", f"arm={arm}").shared_dir == shared
    iterative = pipeline_cfg("experiment=compare", "arm=dpo_iterative")
    assert iterative.rounds * iterative.sample.prompts.n * iterative.sample.k == 192 and "sample" not in iterative.shared_stages
    assert pipeline_cfg("experiment=compare_rlvr", "arm=grpo").shared_dir == str(tmp_path / "shared" / "rlvr_seed0")


def test_budget_counts_steps_prompts_and_samples(pipeline_cfg):
    grpo = arm_budget("grpo", pipeline_cfg("experiment=compare", "arm=grpo", "compare.group_size=3"))
    assert grpo == Budget("grpo", 24 * 2 * 3, "24 steps x 2 prompts x 3 samples")
    dpo = arm_budget("dpo_iterative", pipeline_cfg("experiment=compare", "arm=dpo_iterative", "rounds=3"))
    assert dpo == Budget("dpo_iterative", 3 * 24 * 4, "3 round(s) x 24 prompts x 4 samples")


def test_unequal_or_uncountable_budgets_are_refused_with_the_numbers():
    with pytest.raises(ConfigError, match=r"ppo: 192 \(24 steps x 8 prompts x 1 samples\); grpo: 144 \(24 steps"):
        check_equal([Budget("ppo", 192, "24 steps x 8 prompts x 1 samples"), Budget("grpo", 144, "24 steps x 2 prompts x 3 samples")])
    with pytest.raises(ConfigError, match="cannot be counted: ppo: \\?"):
        check_equal([Budget("ppo", None, "no steps"), Budget("dpo", 192, "...")])


def test_an_unknown_arm_lists_the_known_ones(pipeline_cfg, tmp_path):
    pipeline_cfg()   # Hydra initialised
    with pytest.raises(ConfigError, match=r"unknown arm 'nope'; the known arms are \[.*'dpo_iterative'.*'reinforce_pp'"):
        compose_arm("nope", ["experiment=compare", "model=tiny"], tmp_path)


def test_sweep_values_take_the_command_line_over_the_sweeper_params():
    values = sweep_values({"arm": "ppo,grpo,dpo", "seed": "range(0,2)"}, ["experiment=compare", "arm=ppo,dpo"])
    assert values == {"arm": ["ppo", "dpo"], "seed": ["0", "1"], "experiment": ["compare"]}


def run_compare(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "rlhf.pipeline", "-m", "experiment=compare", "model=tiny",
                           f"paths.log_dir={tmp_path}", *overrides], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_sweep_is_refused_before_any_job_starts(tmp_path):
    unequal = run_compare(tmp_path, "arm=ppo,grpo", "compare.group_size=3")
    assert unequal.returncode == 2
    assert "ppo: 192 (24 steps x 8 prompts x 1 samples); grpo: 144 (24 steps x 2 prompts x 3 samples)" in unequal.stderr
    unknown = run_compare(tmp_path, "arm=ppo,nope")
    assert unknown.returncode == 2 and "unknown arm 'nope'; the known arms are [" in unknown.stderr
    assert not list((tmp_path / "compare" / "demo").glob("*_seed*"))   # no job dir: nothing ran


def test_tensorboard_logger_reaches_the_policy_stage_only(pipeline_cfg):
    cfg = pipeline_cfg("experiment=compare", "arm=grpo", "logger=tensorboard")
    ppo, sft = compose_training_stage(cfg, "ppo", None), compose_training_stage(cfg, "sft", None)
    assert set(ppo.logger) == {"csv", "tensorboard"} and set(sft.logger) == {"csv"}
    assert ppo.logger.tensorboard.version == "grpo"
    validate_config(ppo)


def test_scale_demo_keeps_each_recipes_structure_and_changes_what_the_cpu_needs(pipeline_cfg):
    qwen, paper = pipeline_cfg("experiment=qwen", "scale=demo"), pipeline_cfg("experiment=qwen")
    module, plain = qwen.ppo.overrides.stage.module, paper.ppo.overrides.stage.module
    assert (module.actor_optim.lr, module["update"].critic_warmup_steps, qwen.ppo.overrides.data.batch_size) == (1e-4, 6, 4)
    assert (plain.actor_optim.lr, plain["update"].critic_warmup_steps) == (1e-6, 50)
    for key in ("critic", "kl", "score", "rollout"):
        assert module[key] == plain[key], key
    crs = pipeline_cfg("experiment=crs", "scale=demo")
    assert crs.sft.overrides.trainer.max_steps == 60 and crs.ppo.overrides.reward_fn.w == 0.25
    ice = pipeline_cfg("experiment=compare", "arm=ice_grt", "scale=demo")
    assert ice.ppo.overrides.stage.module.critic_optim.lr == 1e-4 and ice.reward.overrides.data.pairs == "top2_bottom2"
    assert pipeline_cfg("experiment=compare", "arm=grpo", "scale=demo") == pipeline_cfg("experiment=compare", "arm=grpo")
