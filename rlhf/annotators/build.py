"""An annotator from config, by `_target_` or by kind. Kept out of base.py so that the shared
interface imports no annotator; each kind is imported only when asked for, so using one annotator
does not load the others' dependencies (torch, the sentence encoder, HTTP)."""

from __future__ import annotations

from collections.abc import Mapping

from rlhf.annotators.base import Annotator
from rlhf.core.errors import ConfigError

ANNOTATOR_KINDS = ("simulated", "human", "llm_judge", "reward_model")


def build_annotator(cfg: Mapping) -> Annotator:
    """An annotator from config: a configs/annotator/*.yaml node (with `_target_`, instantiated by
    Hydra) or a plain mapping {"kind": one of ANNOTATOR_KINDS, **constructor keys}."""
    cfg = dict(cfg)
    if "_target_" in cfg:
        import hydra.utils

        return hydra.utils.instantiate(cfg, _convert_="all")
    kind = cfg.pop("kind", None)
    if kind == "simulated":
        from rlhf.annotators.simulated import SimulatedAnnotator

        return SimulatedAnnotator(**cfg)
    if kind == "human":
        from rlhf.annotators.human import HumanAnnotator

        return HumanAnnotator.from_file(**cfg)
    if kind == "llm_judge":
        from rlhf.annotators.llm_judge import LLMJudgeAnnotator

        return LLMJudgeAnnotator(**cfg)
    if kind == "reward_model":
        from rlhf.annotators.rm_annotator import RewardModelAnnotator

        return RewardModelAnnotator(**cfg)
    raise ConfigError("annotator.kind", f"unknown annotator kind {kind!r}; expected one of {list(ANNOTATOR_KINDS)} "
                      "(or a `_target_`)")
