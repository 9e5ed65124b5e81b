"""Score-based pairwise judges: a reward model or the simulated annotator (METHODS §5.3, §8.3 item 20).

Both wrap a plain callable, so this module depends on neither the reward-model code nor the
simulated annotator: any `score(prompts, responses) -> list[float]` or
`gold_score(prompt_text, response) -> float` works. Every judge here and in `llm_judge` offers
`compare(prompt, a, b) -> "a" | "b" | "tie"` and `judge_batch(prompts, as, bs) -> list[dict]`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rlhf.evaluate.prompt_sets import prompt_text


def preference_from_scores(score_a: float, score_b: float, tie_margin: float = 0.0) -> str:
    """'a' if s_a - s_b > margin, 'b' if s_b - s_a > margin, else 'tie' (the higher score is preferred,
    METHODS §5.7)."""
    if score_a - score_b > tie_margin:
        return "a"
    if score_b - score_a > tie_margin:
        return "b"
    return "tie"


def _verdicts(scores_a: Sequence[float], scores_b: Sequence[float], tie_margin: float) -> list[dict]:
    return [{"winner": preference_from_scores(a, b, tie_margin), "score_a": float(a), "score_b": float(b)}
            for a, b in zip(scores_a, scores_b)]


class RewardModelJudge:
    """Prefers the response the reward model scores higher; scores go into the judgment rows so the
    same file feeds agreement and reward-length analyses."""

    def __init__(self, score: Callable[[list, list], Sequence[float]], tie_margin: float = 0.0,
                 name: str = "reward_model"):
        self.score = score
        self.tie_margin = tie_margin
        self.name = name

    def judge_batch(self, prompts: Sequence, responses_a: Sequence[str], responses_b: Sequence[str]) -> list[dict]:
        scores_a = list(self.score(list(prompts), list(responses_a)))
        scores_b = list(self.score(list(prompts), list(responses_b)))
        if not len(scores_a) == len(scores_b) == len(prompts):
            raise ValueError(f"score() returned {len(scores_a)} and {len(scores_b)} scores for {len(prompts)} prompts")
        return _verdicts(scores_a, scores_b, self.tie_margin)

    def compare(self, prompt, response_a: str, response_b: str) -> str:
        return self.judge_batch([prompt], [response_a], [response_b])[0]["winner"]


class SimulatedJudge:
    """Prefers the response with the higher gold score: the offline, deterministic judge for CI."""

    def __init__(self, gold_score: Callable[[str, str], float], tie_margin: float = 0.0, name: str = "simulated"):
        self.gold_score = gold_score
        self.tie_margin = tie_margin
        self.name = name

    def judge_batch(self, prompts: Sequence, responses_a: Sequence[str], responses_b: Sequence[str]) -> list[dict]:
        texts = [prompt_text(p) for p in prompts]
        scores_a = [self.gold_score(t, r) for t, r in zip(texts, responses_a)]
        scores_b = [self.gold_score(t, r) for t, r in zip(texts, responses_b)]
        return _verdicts(scores_a, scores_b, self.tie_margin)

    def compare(self, prompt, response_a: str, response_b: str) -> str:
        return self.judge_batch([prompt], [response_a], [response_b])[0]["winner"]
