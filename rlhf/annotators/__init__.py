"""Who ranks and labels sampled responses (METHODS.md §1.3 A3 -> A4): a simulated ICE-GRT labeller
(`simulated`), people through a labelling file (`human`), an LLM judge (`llm_judge`), or a reward
model (`reward_model`). Only the shared interface is imported here, so that using one annotator does
not load the others' dependencies (torch, the sentence encoder, HTTP)."""

from rlhf.annotators.base import Annotator, build_annotator, ranks_from_scores

__all__ = ["Annotator", "build_annotator", "ranks_from_scores"]
