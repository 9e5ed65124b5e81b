"""stage=dpo composes from its schema and loss group, and bad keys fail at start-up with their path."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rlhf.config.validation import validate_config
from rlhf.core.errors import ConfigError
from rlhf.dpo.config import LOSSES

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DPO = ["stage=dpo", "model=tiny", "data=hh_rlhf_pairs", "logger=csv"]


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[*DPO, *overrides])


def test_every_loss_file_is_its_schema_with_the_documented_defaults():
    assert sorted(p.stem for p in (CONFIG_DIR / "dpo_loss").glob("*.yaml")) == sorted(LOSSES)
    for name, schema in LOSSES.items():
        cfg = composed(f"dpo_loss@stage.module.loss={name}")
        validate_config(cfg)
        assert OmegaConf.to_container(cfg.stage.module.loss) == OmegaConf.to_container(OmegaConf.structured(schema))
    default = composed()
    assert default.stage.module.loss == {"name": "sigmoid", "beta": 0.1}   # Rafailov et al. 2023
    assert default.stage.module._target_ == "rlhf.dpo.module.DPOModule"
    assert default.stage.module.max_length == default.data.max_length


@pytest.mark.parametrize("override, key, message", [
    ("+stage.module.loss.bta=0.2", "stage.module.loss.bta", r"SigmoidLossConfig \(did you mean 'beta'\?\)"),
    ("+stage.module.refrence=cached", "stage.module.refrence", r"did you mean 'reference'"),
    ("stage.module.loss.beta=0", "stage.module.loss.beta", r"must be a number > 0"),
    ("stage.module.reference=cachd", "stage.module.reference", r"allowed: \['model', 'cached'\]"),
    ("stage.module.optim.lr=-1", "stage.module.optim.lr", r">= 0"),
])
def test_bad_dpo_keys_name_their_path(override, key, message):
    with pytest.raises(ConfigError, match=message) as caught:
        validate_config(composed(override))
    assert caught.value.key == key


@pytest.mark.parametrize("loss, override, key", [
    ("cdpo", "stage.module.loss.label_smoothing=0.7", "stage.module.loss.label_smoothing"),
    ("robust", "stage.module.loss.flip_rate=0.5", "stage.module.loss.flip_rate"),
    ("orpo", "stage.module.loss.nll_reduction=mean", "stage.module.loss.nll_reduction"),
    ("kto", "stage.module.loss.undesirable_weight=-1", "stage.module.loss.undesirable_weight"),
])
def test_out_of_range_loss_settings_name_their_path(loss, override, key):
    with pytest.raises(ConfigError) as caught:
        validate_config(composed(f"dpo_loss@stage.module.loss={loss}", override))
    assert caught.value.key == key


def test_dpo_needs_preference_data():
    with pytest.raises(ConfigError, match=r"stage=dpo trains on preference pairs.*data=hh_rlhf_pairs\|oasst_pairs"):
        validate_config(composed("data=alpaca"))
