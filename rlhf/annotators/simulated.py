"""A programmatic labeller that stands in for ICE-GRT's human rankers (ICE-GRT
§3.2, §4.3; docs/methods.md §3.3, §5.2), so the whole pipeline runs and can be scored with no people.

Gold score = weighted mean of six computable criteria, with ICE-GRT's eight weights (Table 2:
Clarity 6, Accuracy 6, Completeness 6, Safety 3, Courtesy 3, Comfortableness 3, Conciseness 1,
Context 1; Σ = 29) folded onto them:

| criterion      | ICE-GRT criteria it stands for | weight |
|----------------|--------------------------------|--------|
| relevance      | Context (1) + Accuracy (6)     | 7      |
| completeness   | Completeness                   | 6      |
| no_repetition  | Clarity                        | 6      |
| courtesy       | Courtesy (3) + Comfortableness (3) | 6  |
| safety         | Safety                         | 3      |
| conciseness    | Conciseness                    | 1      |

Accuracy cannot be checked without references, so its weight goes to embedding relevance, the
nearest thing a rule can measure. Rankings add Plackett–Luce noise (Bradley–Terry for a pair) with a
temperature, the simulated counterpart of labeller disagreement.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from rlhf.annotators import criteria as rules
from rlhf.annotators.base import last_user_text
from rlhf.annotators.criteria import ICE_GRT_WEIGHTS
from rlhf.core.errors import ConfigError

ICE_GRT_SOURCES = {
    "relevance": ("context", "accuracy"),
    "completeness": ("completeness",),
    "no_repetition": ("clarity",),
    "courtesy": ("courtesy", "comfortableness"),
    "safety": ("safety",),
    "conciseness": ("conciseness",),
}
ICE_GRT_DERIVED_WEIGHTS = {c: float(sum(ICE_GRT_WEIGHTS[s] for s in srcs)) for c, srcs in ICE_GRT_SOURCES.items()}
CRITERIA = tuple(ICE_GRT_SOURCES)


def weighted_gold_score(criteria: dict[str, float], weights: dict[str, float]) -> float:
    """gold = Σ_c w_c · score_c / Σ_c w_c (the ICE-GRT overall score, docs/methods.md §5.2)."""
    return sum(weights[c] * criteria[c] for c in weights) / sum(weights.values())


def plackett_luce_ranks(scores: list[float], temperature: float, rng: np.random.Generator) -> list[int]:
    """Sample a ranking with P(order) = Π_k exp(s_(k)/T) / Σ_{j≥k} exp(s_(j)/T).

    Sorting s_i / T + g_i with g_i ~ Gumbel(0, 1) draws exactly that; for two items it gives the
    Bradley–Terry probability P(i above j) = σ((s_i − s_j) / T). At T = 0 no noise is drawn and the
    order is the gold order, ties broken by position (the earlier response ranks better), so the
    result is always a permutation of 0..K−1.
    """
    if temperature == 0:
        keys = [float(s) for s in scores]
    else:
        keys = (np.asarray(scores, dtype=float) / temperature + rng.gumbel(size=len(scores))).tolist()
    order = sorted(range(len(keys)), key=lambda i: (-keys[i], i))
    ranks = [0] * len(keys)
    for position, index in enumerate(order):
        ranks[index] = position
    return ranks


class SimulatedAnnotator:
    """Gold criteria + noisy rankings. Noise comes from one seeded generator, so a run that makes
    the same calls in the same order gets the same rankings."""

    name = "simulated"

    def __init__(
        self,
        temperature: float = 0.0,
        seed: int = 0,
        weights: dict[str, float] | None = None,
        encoder=None,
        target_words: tuple[int, int] = (20, 80),
        relevance_band: tuple[float, float] = (0.1, 0.8),
        detail_words: int = 10,
        relevance_words: int = 48,
    ):
        if isinstance(temperature, bool) or not (
            isinstance(temperature, (int, float)) and temperature >= 0 and math.isfinite(temperature)
        ):
            raise ConfigError("annotator.temperature", f"must be a finite number >= 0, got {temperature!r}")
        weights = dict(ICE_GRT_DERIVED_WEIGHTS if weights is None else weights)
        unknown = sorted(set(weights) - set(CRITERIA))
        if unknown:
            raise ConfigError("annotator.weights", f"unknown criteria {unknown}; expected a subset of {list(CRITERIA)}")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ConfigError("annotator.weights", f"weights must be >= 0 with a positive sum, got {weights}")
        lo, hi = target_words
        if not 0 < lo <= hi:
            raise ConfigError("annotator.target_words", f"need 0 < lo <= hi, got {target_words!r}")
        if not relevance_band[0] < relevance_band[1]:
            raise ConfigError("annotator.relevance_band", f"need lo < hi, got {relevance_band!r}")
        self.temperature = float(temperature)
        self.weights = weights
        self.target_words = (int(lo), int(hi))
        self.relevance_band = (float(relevance_band[0]), float(relevance_band[1]))
        if relevance_words < 1:
            raise ConfigError("annotator.relevance_words", f"must be >= 1, got {relevance_words!r}")
        self.detail_words = detail_words
        self.relevance_words = int(relevance_words)
        self.rng = np.random.default_rng(seed)
        self._encoder = encoder

    @property
    def encoder(self):
        if self._encoder is None:
            from rlhf.core.embeddings import default_encoder

            self._encoder = default_encoder()
        return self._encoder

    def relevances(self, prompt_texts: list[str], responses: list[str]) -> list[float]:
        """Cosine(prompt, first `relevance_words` words of the response, courtesy phrases removed)
        through the band.

        Every distinct text is embedded once, in one encode() call, shortest first so batches carry
        little padding. Cutting the response bounds the encoder cost per response (the encoder is
        nearly all of the scoring time), and whether a reply addresses the question shows in its
        opening.
        """
        heads = [" ".join(rules.without_polite_markers(r).split()[: self.relevance_words]) for r in responses]
        answered = [i for i, r in enumerate(responses) if rules.words(r)]
        if not answered:
            return [0.0] * len(responses)
        texts = list(dict.fromkeys([prompt_texts[i] for i in answered] + [heads[i] for i in answered]))
        by_length = sorted(range(len(texts)), key=lambda k: len(texts[k]))
        vectors = self.encoder.encode([texts[k] for k in by_length])
        row = {texts[k]: position for position, k in enumerate(by_length)}
        out = [0.0] * len(responses)
        for i in answered:
            cosine = float((vectors[row[prompt_texts[i]]] * vectors[row[heads[i]]]).sum())
            out[i] = rules.relevance_from_cosine(cosine, self.relevance_band)
        return out

    def criteria_batch(self, prompt_texts: list[str], responses: list[str]) -> list[dict[str, float]]:
        if len(prompt_texts) != len(responses):
            raise ValueError(f"need one prompt per response, got {len(prompt_texts)} and {len(responses)}")
        relevances = self.relevances(prompt_texts, responses)
        out = []
        for prompt_text, response, relevance in zip(prompt_texts, responses, relevances):
            if not rules.words(response):
                out.append(dict.fromkeys(CRITERIA, 0.0))
                continue
            out.append(
                {
                    "relevance": relevance,
                    "completeness": rules.completeness(prompt_text, response, self.detail_words),
                    "no_repetition": rules.no_repetition(response),
                    "courtesy": rules.courtesy(response),
                    "safety": rules.safety(response),
                    "conciseness": rules.conciseness(len(rules.words(response)), self.target_words),
                }
            )
        return out

    def criteria(self, prompt_text: str, response: str) -> dict[str, float]:
        return self.criteria_batch([prompt_text], [response])[0]

    def gold_scores(self, prompt_texts: list[str], responses: list[str]) -> list[float]:
        """Batched gold score: use this to score hundreds of (prompt, response) pairs at once."""
        return [weighted_gold_score(c, self.weights) for c in self.criteria_batch(prompt_texts, responses)]

    def gold_score(self, prompt_text: str, response: str) -> float:
        return self.gold_scores([prompt_text], [response])[0]

    def score(self, prompts: list[list[dict]], responses: list[str]) -> torch.Tensor:
        """Gold scores as a float32 CPU tensor [B]: the reward protocol of
        rlhf/rewards/build.py, so the simulated labeller can serve as the gold reward in PPO and evaluation."""
        if len(prompts) != len(responses):
            raise ValueError(f"need one prompt per response, got {len(prompts)} and {len(responses)}")
        texts = [last_user_text(prompt) for prompt in prompts]
        return torch.tensor(self.gold_scores(texts, list(responses)), dtype=torch.float32)

    def rank(self, prompt: list[dict], responses: list[str]) -> list[int]:
        """Rank per response, 0 = best: the gold order with Plackett–Luce noise at `temperature`."""
        text = last_user_text(prompt)
        scores = self.gold_scores([text] * len(responses), list(responses))
        return plackett_luce_ranks(scores, self.temperature, self.rng)

    def labels(self, prompt: list[dict], response: str) -> dict[str, float]:
        """Noise-free criteria plus "quality" = gold score, the target of an absolute RM
        (docs/methods.md §3.5)."""
        text = last_user_text(prompt)
        values = self.criteria(text, response)
        values["quality"] = weighted_gold_score(values, self.weights)
        return values
