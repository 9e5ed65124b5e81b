"""Every yaml under configs/ composes with Hydra's compose API.

Files are discovered at collection time, so a config added by anyone is tested without editing
this file. A group option is composed as `train` + `<group>=<option>`: the other groups keep their
defaults, which is how a user selects it. Some options read keys of a partner group (a reward
stage reads `data.min_prompt_tokens`, which only preference data configs define); when the
defaults cannot satisfy them, the option passes if some single option of another group does,
as `stage=reward data=hh_rlhf_pairs` would on the command line. Groups that `train` does not
list are tried from the other primary configs (e.g. `pipeline`), then as `+group=option`. Beyond composing, every
interpolation outside the `hydra` node must resolve (`???` placeholders may stay) and every
`_target_` must import.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from hydra.utils import get_object
from omegaconf import OmegaConf, open_dict
from omegaconf.errors import InterpolationKeyError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
PRIMARY = "train"


def _group_options() -> list[tuple[str, str]]:
    """(group, option) for every yaml below a group folder; nested folders give `a/b` options."""
    out = []
    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        rel = path.relative_to(CONFIG_DIR)
        if len(rel.parts) == 1:
            continue
        out.append((rel.parts[0], "/".join(rel.with_suffix("").parts[1:])))
    return out


def _primary_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


@pytest.fixture(scope="module", autouse=True)
def hydra_context():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        yield


def _compose(config_name: str, overrides: list[str], tmp_path: Path):
    """Compose, then resolve every non-hydra interpolation the way a run would see it."""
    cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    hydra_node = cfg.hydra
    with open_dict(cfg):
        del cfg["hydra"]
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False), hydra_node


def _targets(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["_target_"]] if isinstance(node.get("_target_"), str) else []
        return found + [t for value in node.values() for t in _targets(value)]
    if isinstance(node, list):
        return [t for value in node for t in _targets(value)]
    return []


def test_discovery_sees_the_known_groups():
    # A guard that the glob itself works: these groups are listed in README.md (Config groups).
    groups = {group for group, _ in _group_options()}
    assert {"model", "peft", "stage", "data", "trainer", "strategy", "logger", "callbacks", "paths"} <= groups
    assert PRIMARY in _primary_configs()


@pytest.mark.parametrize("config_name", _primary_configs())
def test_primary_config_composes(config_name, tmp_path):
    resolved, _ = _compose(config_name, [], tmp_path)
    for target in _targets(resolved):
        assert get_object(target) is not None


def _try_compose(config_name: str, overrides: list[str], tmp_path: Path):
    """(resolved config, hydra node) or the error: a Hydra error when the primary has no such group,
    an InterpolationKeyError when a partner group is missing."""
    try:
        return _compose(config_name, overrides, tmp_path)
    except (HydraException, InterpolationKeyError) as err:
        return err


def _compose_option(group: str, option: str, tmp_path: Path):
    """The first way a user could select this option: from a primary config (train first), alone or
    with one partner option; else as an addition (`+group=option`) to `train`."""
    primaries = sorted(_primary_configs(), key=lambda name: name != PRIMARY)
    order = {"data": 0, "stage": 1}  # partner groups most likely to hold missing keys
    partners = sorted((o for o in _group_options() if o[0] != group), key=lambda o: order.get(o[0], 2))
    stages = [o for o in partners if o[0] == "stage"]  # an option of one stage's section (algorithm=, dpo_loss=)
    for primary in primaries:
        found = _try_compose(primary, [f"{group}={option}"], tmp_path)
        if isinstance(found, Exception):
            for other_group, other_option in partners if isinstance(found, InterpolationKeyError) else stages:
                found = _try_compose(primary, [f"{group}={option}", f"{other_group}={other_option}"], tmp_path)
                if not isinstance(found, Exception):
                    break
        if not isinstance(found, Exception):
            return found
    # Nothing worked: compose the simplest form again so the failure shows its own error.
    return _compose(PRIMARY, [f"+{group}={option}"], tmp_path)


@pytest.mark.parametrize(("group", "option"), _group_options(), ids=lambda v: str(v))
def test_group_option_composes(group, option, tmp_path):
    resolved, hydra_node = _compose_option(group, option, tmp_path)
    for target in _targets(resolved):
        assert get_object(target) is not None, target
    if group == "hparams_search":
        # A search config must actually sweep something.
        assert hydra_node.mode == RunMode.MULTIRUN and hydra_node.sweeper.params


def test_option_changes_the_composed_value(tmp_path):
    # Selecting an option must reach the composed tree (not silently keep the default).
    tiny, _ = _compose(PRIMARY, ["model=tiny", "peft=none", "strategy=fsdp2"], tmp_path)
    assert tiny["model"]["source"] == "tiny"
    assert tiny["stage"]["module"]["peft"]["enabled"] is False
    assert tiny["trainer"]["strategy"]["_target_"].endswith("ModelParallelStrategy")
    # fsdp2: data-parallel size follows the device count (2 by default there).
    assert tiny["trainer"]["strategy"]["data_parallel_size"] == tiny["trainer"]["devices"] == 2


def test_two_stage_curriculum_carries_the_thesis_recipe(tmp_path):
    # docs/methods.md §2.3 / §2.6 (thesis §5.2, Table 3): pre_sft 1 epoch on alpaca + GSM8K
    # (+ dolly when present),
    # then sft 2 epochs on OASST threads, LoRA r16 a32 all-linear, lr 1e-4, eps 1e-12, cosine, warmup 0.03,
    # clip 0.3, accumulation 16, batch 4, 2048 tokens, 95/5 split.
    cfg, _ = _compose(PRIMARY, ["experiment=sft_two_stage"], tmp_path)
    assert cfg["task_name"] == "sft_two_stage"
    assert [s["adapter"] for s in cfg["data"]["sources"]] == ["alpaca", "gsm8k"]
    assert list(cfg["curriculum"]) == ["pre_sft", "sft"]
    assert cfg["curriculum"]["pre_sft"]["trainer"]["max_epochs"] == 1
    stage2 = cfg["curriculum"]["sft"]
    assert stage2["trainer"]["max_epochs"] == 2 and stage2["adapter"] == "continue"
    assert [s["adapter"] for s in stage2["data"]["sources"]] == ["oasst_threads"]
    assert stage2["data"]["sources"][0]["path"].endswith("sft/oasst_en_100_tree.jsonl.gz")
    peft = cfg["peft"]
    assert (peft["enabled"], peft["r"], peft["alpha"], peft["target_modules"]) == (True, 16, 32, "all-linear")
    optim = cfg["stage"]["module"]["optim"]
    assert (optim["lr"], optim["eps"], optim["betas"], optim["schedule"], optim["warmup_ratio"]) == (
        1.0e-4, 1.0e-12, [0.9, 0.999], "cosine", 0.03)
    assert (cfg["trainer"]["gradient_clip_val"], cfg["trainer"]["accumulate_grad_batches"]) == (0.3, 16)
    assert (cfg["data"]["batch_size"], cfg["data"]["max_length"], cfg["data"]["val_fraction"]) == (4, 2048, 0.05)
