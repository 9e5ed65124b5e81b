"""The pipeline's config is checked before its first stage: its own keys, and every training stage's
composed config. Every shipped recipe must pass; each kind of typo must name its key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from rlhf.config.pipeline_validation import allowed_pipeline_keys, validate_pipeline_config
from rlhf.core.errors import ConfigError, RLHFError
from rlhf.pipeline import STAGES, check_config

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
QUICK = {"dpo_iterative", "rlvr"}


def pipeline_cfg(tmp_path, *overrides: str):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("pipeline", overrides=["model=tiny", f"run_dir={tmp_path}", f"paths.output_dir={tmp_path}",
                                              f"paths.root_dir={CONFIG_DIR.parent}", *overrides])


@pytest.mark.parametrize("experiment", [pytest.param(e, marks=[] if e in QUICK else [pytest.mark.slow])
                                        for e in EXPERIMENTS])
def test_every_shipped_recipe_passes(tmp_path, experiment):
    try:
        cfg = pipeline_cfg(tmp_path, f"experiment={experiment}")
    except ConfigCompositionException as err:
        if "No match in the defaults list" in str(err):
            pytest.skip(f"experiment={experiment} is a recipe for rlhf.train, not the pipeline")
        raise
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        check_config(cfg)   # composes and validates each training stage, as a run does first


def test_the_demo_default_passes(tmp_path):
    cfg = pipeline_cfg(tmp_path)
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        check_config(cfg)


def test_keys_recipes_add_are_allowed():
    allowed = allowed_pipeline_keys()
    # pipeline.yaml's own keys, its groups, and the stage sections recipes add at the top level (dpo:)
    assert {"sample", "annotate", "evaluate", "artifacts", "model", "annotator", "experiment", "dpo"} <= allowed


@pytest.mark.parametrize("override, key, message", [
    ("+sampel.k=3", "sampel", r"did you mean 'sample'\?"),
    ("sample.k=abc", "sample.k", r"must be an integer >= 1, got 'abc'"),
    ("sample.k=0", "sample.k", r"must be an integer >= 1, got 0"),
    ("evaluate.bootstrap=-5", "evaluate.bootstrap", r"must be an integer >= 0, got -5"),
    ("annotate.labels=maybe", "annotate.labels", r"must be true or false, got 'maybe'"),
])
def test_a_typo_in_the_pipeline_names_its_key(tmp_path, override, key, message):
    with pytest.raises(ConfigError, match=message) as caught:
        validate_pipeline_config(pipeline_cfg(tmp_path, override), STAGES)
    assert caught.value.key == key


def test_a_typo_in_a_later_stage_stops_the_run_before_the_first(tmp_path):
    cfg = pipeline_cfg(tmp_path, "+ppo.overrides.stage.module.kl.init_bta=0.1")
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        with pytest.raises(RLHFError, match=r"stage ppo: config key 'stage.module.kl.init_bta': .*did you mean "
                                            r"'init_beta'"):
            check_config(cfg)
    assert not (tmp_path / "sft").exists()
