"""The pipeline's own keys, checked before any stage runs: a key added with `+` that nothing reads,
and the counts and switches of the sample, annotate and evaluate stages. Each training stage's
config is checked by `validate_config`, also before the first stage runs (rlhf.pipeline).

The pipeline config is plain YAML (configs/pipeline.yaml) that experiments extend, so the keys it
may hold are those of pipeline.yaml, its groups, and what the files of its global groups
(experiment, scale, arm, ...) set at the top level.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rlhf.core.errors import ConfigError
from rlhf.core.schema import Check, unknown_key

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
GLOBAL = "@package _global_"
# (section, key) -> (rule, integer?) for the pipeline's own stages (rlhf.pipeline sample/annotate/evaluate)
RULES = {
    ("sample", "k"): (Check(low=1), True), ("sample", "batch_size"): (Check(low=1), True),
    ("evaluate", "batch_size"): (Check(low=1), True), ("evaluate", "bootstrap"): (Check(low=0), True),
    ("annotate", "labels"): (Check(choices=(True, False)), False),
}


def _defaults(entry: DictConfig) -> list[tuple[str, bool]]:
    """(group, placed at the top level?) of each defaults entry of a primary config."""
    out = []
    for item in entry.get("defaults", []):
        name = next(iter(item)) if isinstance(item, DictConfig) else str(item)
        name = name.removeprefix("optional ").removeprefix("override ").lstrip("/")
        group, _, package = name.partition("@")
        if group != "_self_":
            out.append((group, package == "_global_"))
    return out


def _top_level_keys(folder: Path, every_file: bool) -> set[str]:
    """Top-level keys of a group's files that place themselves at the top level (all of them when
    the defaults entry does, `group@_global_`)."""
    keys = set()
    for path in folder.glob("*.yaml"):
        node = OmegaConf.load(path)
        if isinstance(node, DictConfig) and (every_file or GLOBAL in path.read_text().split("\n", 1)[0]):
            keys |= {str(k) for k in node.keys()} - {"defaults"}
    return keys


def allowed_pipeline_keys(config_dir: Path = CONFIG_DIR, name: str = "pipeline") -> set[str]:
    entry = OmegaConf.load(config_dir / f"{name}.yaml")
    keys = {str(k) for k in entry.keys()} - {"defaults"} | {"hydra"}
    for group, at_top in _defaults(entry):
        if not at_top:
            keys.add(group)
        if (config_dir / group).is_dir():
            keys |= _top_level_keys(config_dir / group, every_file=at_top)
    return keys


def validate_pipeline_config(cfg: DictConfig, stages: tuple[str, ...] = ()) -> None:
    """Unknown top-level keys (a stage's own section, named in `stages`, is always allowed) and the
    ranges of the pipeline's own stage settings."""
    allowed = allowed_pipeline_keys() | set(stages)
    for key in cfg.keys():
        if str(key) not in allowed:
            raise unknown_key("", str(key), allowed, "the pipeline (configs/pipeline.yaml)")
    for (section, key), (rule, integer) in RULES.items():
        node = cfg.get(section)
        if node is None or key not in node:
            continue
        value = node[key]
        typed = isinstance(value, bool) if not integer else isinstance(value, int) and not isinstance(value, bool)
        if not typed or not rule.ok(value):
            expected = rule.describe(True, False) if integer else "true or false"
            raise ConfigError(f"{section}.{key}", f"must be {expected}, got {value!r}")
