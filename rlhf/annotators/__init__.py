"""Who ranks and labels sampled responses (docs/methods.md §1.3 A3 -> A4): a simulated ICE-GRT labeller
(`simulated`), people through a labelling file (`human`), an LLM judge (`llm_judge`), or a reward
model (`reward_model`). Only the shared interface and the builder are imported here; the builder
imports each kind when asked for it, so using one annotator does not load the others' dependencies
(torch, the sentence encoder, HTTP)."""

from rlhf.annotators.base import Annotator, ranks_from_scores
from rlhf.annotators.build import build_annotator

__all__ = ["Annotator", "build_annotator", "ranks_from_scores"]
