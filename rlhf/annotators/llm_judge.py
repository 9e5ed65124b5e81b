"""An LLM as ranker: K responses ranked by a round robin of pairwise judge calls.

The judge is the pairwise protocol of METHODS.md §5.3 (any OpenAI-compatible endpoint, optional
position swap against order bias); a round robin turns its verdicts into a ranking, ties counting
half a win as in AlpacaEval's convention.
"""

from __future__ import annotations

from itertools import combinations

from rlhf.annotators.base import ranks_from_scores, render_conversation
from rlhf.core.errors import ConfigError

VERDICT_POINTS = {"a": (1.0, 0.0), "b": (0.0, 1.0), "tie": (0.5, 0.5)}


def round_robin_wins(k: int, verdicts: dict[tuple[int, int], str]) -> list[float]:
    """wins_i = Σ_{j≠i} [i beat j] + 0.5 · [i tied j], from verdicts on every pair (i, j), i < j,
    where "a" means the first of the pair (i) won."""
    wins = [0.0] * k
    for i, j in combinations(range(k), 2):
        verdict = verdicts[(i, j)]
        if verdict not in VERDICT_POINTS:
            raise ValueError(f"judge verdict for pair ({i}, {j}) is {verdict!r}; expected 'a', 'b' or 'tie'")
        points_i, points_j = VERDICT_POINTS[verdict]
        wins[i] += points_i
        wins[j] += points_j
    return wins


class LLMJudgeAnnotator:
    """Rank by round-robin wins (K(K-1)/2 pairs per prompt, two calls each with position swap);
    equal wins tie.

    `judge` is anything with compare(prompt_text, a, b) -> "a" | "b" | "tie"; without one, an
    rlhf.evaluate.llm_judge.LLMJudge is built for base_url and model. The API key is read from the
    environment variable named by `api_key_env` at request time; this class never holds it.
    """

    def __init__(
        self,
        judge=None,
        base_url: str | None = None,
        model: str | None = None,
        prompt_template: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        swap_positions: bool = True,
        timeout: float = 60.0,
        max_retries: int = 3,
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ):
        if judge is None:
            if not base_url:
                raise ConfigError("annotator.base_url", "the LLM judge needs the endpoint's base URL, e.g. http://localhost:8000/v1")
            if not model:
                raise ConfigError("annotator.model", "the LLM judge needs a model name served at base_url")
            from rlhf.evaluate.llm_judge import LLMJudge

            options = {} if prompt_template is None else {"prompt_template": prompt_template}
            judge = LLMJudge(
                base_url,
                model,
                api_key_env=api_key_env,
                swap_positions=swap_positions,
                timeout=timeout,
                max_retries=max_retries,
                temperature=temperature,
                max_tokens=max_tokens,
                **options,
            )
        self.judge = judge
        self.name = f"llm_judge:{model}" if model else "llm_judge"

    def rank(self, prompt: list[dict], responses: list[str]) -> list[int]:
        """Rank per response, 0 = most round-robin wins."""
        text = render_conversation(prompt)
        verdicts = {
            (i, j): self.judge.compare(text, responses[i], responses[j])
            for i, j in combinations(range(len(responses)), 2)
        }
        return ranks_from_scores(round_robin_wins(len(responses), verdicts))

    def labels(self, prompt: list[dict], response: str) -> dict[str, float]:
        raise NotImplementedError("the LLM judge compares responses; it gives no per-criterion labels")
