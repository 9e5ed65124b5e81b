"""Who ranks and labels sampled responses (METHODS.md §1.3 A3 -> A4): a simulated ICE-GRT labeller,
people through a labelling file, an LLM judge, or a reward model."""

from rlhf.annotators.base import Annotator, build_annotator, ranks_from_scores
from rlhf.annotators.human import HumanAnnotator, export_labelling_file, import_rankings
from rlhf.annotators.llm_judge import LLMJudgeAnnotator
from rlhf.annotators.reward_model import RewardModelAnnotator
from rlhf.annotators.simulated import ICE_GRT_DERIVED_WEIGHTS, SimulatedAnnotator

__all__ = [
    "Annotator",
    "HumanAnnotator",
    "ICE_GRT_DERIVED_WEIGHTS",
    "LLMJudgeAnnotator",
    "RewardModelAnnotator",
    "SimulatedAnnotator",
    "build_annotator",
    "export_labelling_file",
    "import_rankings",
    "ranks_from_scores",
]
