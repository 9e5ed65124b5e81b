"""Rules across groups that no single schema can state: the stage, its data and its reward must fit
together, or the run stops here, before any model loads."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rlhf.config.store import SCHEMAS
from rlhf.core.errors import ConfigError
from rlhf.core.schema import as_config
from rlhf.data.source_spec import metadata_provided
from rlhf.rewards.build import required_metadata
from rlhf.rl.config import PPOModuleConfig, algorithm_problems

DATA_DIR = Path(__file__).resolve().parents[2] / "configs" / "data"
PROMPTS = "rlhf.data.prompt_datamodule.PromptDataModule"
SFT = "rlhf.data.sft_datamodule.SFTDataModule"
PAIRS = "rlhf.data.preference_datamodule.PreferenceDataModule"
LABELS = "rlhf.data.absolute_datamodule.AbsoluteDataModule"
# (stage module target, its `kind` or None) -> (what the data must be, in words; datamodule target)
NEEDS = {
    ("rlhf.rl.module.PPOModule", None): ("prompt data", PROMPTS),
    ("rlhf.sft.module.SFTModule", None): ("SFT conversations", SFT),
    ("rlhf.reward_model.module.RewardModule", "preference"): ("preference pairs or rankings", PAIRS),
    ("rlhf.reward_model.module.RewardModule", "absolute"): ("absolute labels", LABELS),
    # every DPO loss, kto included, trains on pairs: kto splits each into a desirable chosen and an
    # undesirable rejected example (rlhf.dpo.module)
    ("rlhf.dpo.module.DPOModule", None): ("preference pairs or rankings", PAIRS),
}


def _data_target(path: Path) -> str | None:
    """A data file's `_target_`: its own, else its schema's (the first entry of its defaults list)."""
    node = OmegaConf.load(path)
    if node.get("_target_"):
        return node.get("_target_")
    schemas = [SCHEMAS.get(("data", str(entry))) for entry in node.get("defaults") or []]
    return next((getattr(s, "_target_", None) for s in schemas if s is not None), None)


def data_options(target: str, data_dir: Path = DATA_DIR) -> list[str]:
    """The shipped `data=` options whose datamodule is `target`."""
    return sorted(p.stem for p in data_dir.glob("*.yaml") if _data_target(p) == target)


def _stage_need(module: DictConfig):
    target = module.get("_target_")
    return NEEDS.get((target, module.get("kind"))) or NEEDS.get((target, None))


def check_data_fits_stage(cfg: DictConfig) -> None:
    stage, data = cfg.get("stage"), cfg.get("data")
    if stage is None or data is None or "module" not in stage:
        return
    need = _stage_need(stage.module)
    given = data.get("_target_")
    if need is None or given is None or given == need[1]:
        return
    name = stage.get("name", "this stage")
    raise ConfigError("data", f"stage={name} trains on {need[0]} ({need[1].rsplit('.', 1)[-1]}), but the data config "
                              f"builds {given.rsplit('.', 1)[-1]}; pick one that fits: "
                              f"data={'|'.join(data_options(need[1]))} (or your own config with _target_: {need[1]})")


def _reward_paths(node, path: str):
    """(key path, value) of every `path` a reward model part of PPO's reward needs."""
    if isinstance(node, (list, tuple)):
        for i, part in enumerate(node):
            yield from _reward_paths(part, f"{path}.{i}")
        return
    if not isinstance(node, dict):
        return
    if node.get("kind") == "reward_model":
        yield f"{path}.path", node.get("path")
    for key in ("preference", "absolute", "fn", "combine"):
        if key in node:
            yield from _reward_paths(node[key], f"{path}.{key}")


def check_reward_fits_stage(cfg: DictConfig) -> None:
    stage = cfg.get("stage")
    if stage is None or _stage_need(stage.get("module") or {}) != NEEDS[("rlhf.rl.module.PPOModule", None)]:
        return
    reward = OmegaConf.to_container(cfg.reward_fn, resolve=True) if cfg.get("reward_fn") is not None else None
    if reward is None:
        raise ConfigError("reward_fn", "stage=ppo needs a reward: reward_fn=word_count|reward_model|crs")
    for key, value in _reward_paths(reward, "reward_fn"):
        if not value:
            raise ConfigError(key, "a reward_model reward needs the folder of a trained reward model "
                                   "(the reward stage's export dir), e.g. reward_fn.path=runs/reward/.../model")


def _data_choice() -> str:
    """`data=<option>` of this run, when Hydra composed it, for error messages."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return f"data={HydraConfig.get().runtime.choices['data']}"
    except Exception:
        return "the data config"


def check_metadata_fits_reward(cfg: DictConfig) -> None:
    """Every metadata field PPO's reward reads (its parts' `required_fields`) is provided by every
    prompt source: built-in sets bring theirs, a file or hub source maps them in `metadata_fields`."""
    stage, data = cfg.get("stage"), cfg.get("data")
    if (stage is None or data is None or cfg.get("reward_fn") is None or data.get("_target_") != PROMPTS
            or _stage_need(stage.get("module") or {}) != NEEDS[("rlhf.rl.module.PPOModule", None)]):
        return
    needs = required_metadata(OmegaConf.to_container(cfg.reward_fn, resolve=True))
    if not needs:
        return
    for i, source in enumerate(OmegaConf.to_container(data.sources, resolve=False) or []):  # paths may need a run
        have = metadata_provided(source, f"data.sources.{i}")
        for reward_key, field in needs:
            if field not in have:
                where = source.get("path") or f"builtin {source.get('builtin')}"
                raise ConfigError(f"data.sources.{i}.metadata_fields",
                                  f"{reward_key} reads the metadata field '{field}', which prompt source {i} of "
                                  f"{_data_choice()} ({where}) does not provide (it provides: {', '.join(have)}); "
                                  f"map it from the source's records, e.g. "
                                  f"data.sources.{i}.metadata_fields.{field}=<field name in the source>")


def check_algorithm_fits(cfg: DictConfig) -> None:
    """The RL algorithm's rules across sections (rlhf.rl.config.algorithm_problems): e.g. a group
    baseline with one sample per prompt, GAE without a critic."""
    stage = cfg.get("stage")
    module = stage.get("module") if stage is not None else None
    if module is None or module.get("_target_") != "rlhf.rl.module.PPOModule":
        return
    sections = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
                for k, v in module.items() if k in ALGORITHM_SECTIONS}
    for key, message in algorithm_problems(as_config(PPOModuleConfig, sections, "stage.module"), "stage.module"):
        raise ConfigError(key, message)


ALGORITHM_SECTIONS = ("algorithm", "critic", "rollout", "update", "kl", "score")


def check_fit(cfg: DictConfig) -> None:
    check_data_fits_stage(cfg)
    check_reward_fits_stage(cfg)
    check_metadata_fits_reward(cfg)
    check_algorithm_fits(cfg)
