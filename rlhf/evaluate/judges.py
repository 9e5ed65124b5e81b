"""Score-based pairwise judges: an RM or the simulated annotator (docs/methods.md §5.3, §5.7, §8.3.20).

Both prefer the response with the higher score. Every judge here and the LLM judge
(rlhf.annotators.llm_judge.LLMJudge) offer `name`, `compare(prompt, a, b) -> "a" | "b" | "tie"` and
`judge_batch(prompts, as, bs) -> list[dict]` (each dict has "winner" plus what the judge saw, e.g.
the two scores, so the same judgments file feeds agreement and reward-length analyses). `build_judge` imports the heavy backends lazily.
"""

from __future__ import annotations

from collections.abc import Sequence

from rlhf.core.errors import ConfigError

JUDGE_KINDS = ("llm", "reward_model", "simulated")


def preference_from_scores(score_a: float, score_b: float, tie_margin: float = 0.0) -> str:
    """'a' if s_a - s_b > margin, 'b' if s_b - s_a > margin, else 'tie' (the higher score is
    preferred, docs/methods.md §5.7)."""
    if score_a - score_b > tie_margin:
        return "a"
    if score_b - score_a > tie_margin:
        return "b"
    return "tie"


def _verdicts(scores_a: Sequence[float], scores_b: Sequence[float], tie_margin: float) -> list[dict]:
    return [{"winner": preference_from_scores(a, b, tie_margin), "score_a": a, "score_b": b}
            for a, b in zip(scores_a, scores_b)]


def _floats(values, expected: int, who: str) -> list[float]:
    """A score tensor / array / list as plain floats (iterating a 1-D tensor yields 0-d tensors)."""
    out = [float(v) for v in values]
    if len(out) != expected:
        raise ValueError(f"{who} returned {len(out)} scores for {expected} responses")
    return out


class RewardModelJudge:
    """Any object with `score(prompts, responses) -> tensor [B]` (the reward protocol of
    rlhf/rewards/build.py)."""

    def __init__(self, scorer, tie_margin: float = 0.0, name: str = "reward_model"):
        if not callable(getattr(scorer, "score", None)):
            raise TypeError(f"{type(scorer).__name__} has no score(prompts, responses) method")
        self.scorer = scorer
        self.tie_margin = tie_margin
        self.name = name

    def judge_batch(self, prompts: Sequence, responses_a: Sequence[str], responses_b: Sequence[str]) -> list[dict]:
        who = f"{self.name}.score"
        scores_a = _floats(self.scorer.score(list(prompts), list(responses_a)), len(prompts), who)
        scores_b = _floats(self.scorer.score(list(prompts), list(responses_b)), len(prompts), who)
        return _verdicts(scores_a, scores_b, self.tie_margin)

    def compare(self, prompt, response_a: str, response_b: str) -> str:
        return self.judge_batch([prompt], [response_a], [response_b])[0]["winner"]


def _question(prompt) -> str:
    """What the simulated annotator judges relevance against: the final user turn (as in its rank())."""
    return prompt if isinstance(prompt, str) else prompt[-1]["content"]


class SimulatedJudge:
    """The simulated annotator's noise-free gold scores (`gold_scores(prompt_texts, responses)`):
    the offline, deterministic judge for CI and demos."""

    def __init__(self, annotator, tie_margin: float = 0.0, name: str = "simulated"):
        if not callable(getattr(annotator, "gold_scores", None)):
            raise TypeError(f"{type(annotator).__name__} has no gold_scores(prompt_texts, responses) method")
        self.annotator = annotator
        self.tie_margin = tie_margin
        self.name = name

    def judge_batch(self, prompts: Sequence, responses_a: Sequence[str], responses_b: Sequence[str]) -> list[dict]:
        texts = [_question(p) for p in prompts]
        # One call for both sides, so the annotator embeds every text in a single batch.
        scores = _floats(self.annotator.gold_scores(texts + texts, list(responses_a) + list(responses_b)),
                         2 * len(prompts), f"{self.name}.gold_scores")
        return _verdicts(scores[:len(prompts)], scores[len(prompts):], self.tie_margin)

    def compare(self, prompt, response_a: str, response_b: str) -> str:
        return self.judge_batch([prompt], [response_a], [response_b])[0]["winner"]


def build_judge(kind: str, *, base_url: str | None = None, judge_model: str | None = None,
                reward_model: str | None = None, reward_output: str = "logit", device: str = "cpu",
                tie_margin: float = 0.0, seed: int = 0, **llm_options):
    """A judge by kind: "llm" (OpenAI-compatible endpoint), "reward_model" (a saved RM folder) or
    "simulated" (gold scores of rlhf.annotators.simulated)."""
    if kind == "llm":
        if not base_url or not judge_model:
            raise ConfigError("evaluate.judge", "the LLM judge needs base_url (e.g. http://localhost:8000/v1) "
                              "and judge_model (the served model name)")
        from rlhf.annotators.llm_judge import LLMJudge

        return LLMJudge(base_url, judge_model, seed=seed, **llm_options)
    if kind == "reward_model":
        if not reward_model:
            raise ConfigError("evaluate.reward_model", "the reward-model judge needs the saved RM folder path")
        from rlhf.reward_model.scoring import load_reward_model

        scorer = load_reward_model(reward_model, output=reward_output, device=device)
        return RewardModelJudge(scorer, tie_margin, name=f"reward_model:{reward_model}")
    if kind == "simulated":
        from rlhf.annotators.simulated import SimulatedAnnotator

        return SimulatedJudge(SimulatedAnnotator(seed=seed), tie_margin)
    raise ConfigError("evaluate.judge", f"unknown judge '{kind}'; allowed: {list(JUDGE_KINDS)}")
