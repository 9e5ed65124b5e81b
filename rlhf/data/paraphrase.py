"""Paraphrase augmentation of under-represented replies with similarity-adjusted labels.

Thesis §5.3.1, Algorithm 1 (docs/methods.md §3.7 `augment`): the SFT model rewrites a low-quality reply
in a clearer, more concise form; the rewrite is paired with the original prompt and gets the
original score lowered by how far the rewrite drifted from the original (sentence-embedding
cosine, and no similarity at all if the language changed). The augmented examples are added on
top of the originals and are expected to be noisier.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from rlhf.data.absolute_labels import quality_bucket
from rlhf.core.errors import ConfigError, DataError

_STOP_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "the and is are of to that it with for this you was be have not on what how can would "
        "they will which there their an".split()
    ),
    "es": frozenset(
        "el la los las de que y en un una es por con para no se del lo como más pero sus ya "
        "este está muy también hay".split()
    ),
    "fr": frozenset(
        "le la les de des et est un une du en que qui pas pour dans ce il elle sur au avec "
        "je vous nous sont mais très".split()
    ),
    "de": frozenset(
        "der die das und ist nicht ein eine zu den mit von sich des auf für dem im es ich sie "
        "wir auch wie sind oder aber noch sehr".split()
    ),
}


def detect_language(text: str) -> str:
    """"en", "es", "fr", "de" by stop-word counts, or "unknown" (Algorithm 1's language check).

    A dependency-free heuristic, not a language identifier: it needs at least two stop-word hits
    and a strict winner, so short replies, code, lists of names and mixed-language text come out
    "unknown"; languages outside the four (the thesis keeps only en/es/fr/de, §5.1.2) are either
    "unknown" or mistaken for a close one (Portuguese or Italian for Spanish or French).
    """
    words = re.findall(r"[^\W\d_]+", text.lower())
    counts = {lang: sum(w in stop for w in words) for lang, stop in _STOP_WORDS.items()}
    best = max(counts.values())
    winners = [lang for lang, c in counts.items() if c == best]
    return winners[0] if best >= 2 and len(winners) == 1 else "unknown"


def similarity_adjusted_score(score: float, cosine: float, same_language: bool, alpha: float = 0.5) -> float:
    """s_adj = clip(s · (1 − α · (1 − sim)), 0, 1), sim = clip(cos, 0, 1), or 0 across languages.

    The seed gives no formula (docs/methods.md §3.7, §8.3.13): this one never raises a score, lowers
    it by at most the fraction α, and leaves a perfect paraphrase at its original score.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError("reward.augment.alpha", f"alpha {alpha!r} must be in [0, 1]")
    sim = min(1.0, max(0.0, float(cosine))) if same_language else 0.0
    return min(1.0, max(0.0, score * (1.0 - alpha * (1.0 - sim))))


def paraphrase_prompt(response: str) -> list[dict]:
    """The rewrite request given to the SFT model (thesis §5.3.1: clearer, more concise, no detail
    that is not needed). It asks to keep the language, since a language change zeroes the label."""
    return [
        {
            "role": "user",
            "content": (
                "Rewrite the answer below so that it is clearer and more concise. Remove unnecessary "
                "detail, keep its meaning and write it in the same language. Reply with the "
                "rewritten answer only.\n\n"
                f"Answer:\n{response}"
            ),
        }
    ]


def _prompt_text(record: dict, index: int) -> str:
    prompt = record.get("prompt")
    if not isinstance(prompt, list) or not prompt or prompt[-1].get("role") != "user":
        raise DataError(f"record {index}: 'prompt' must be a list of messages ending with a user turn", record=index)
    return prompt[-1]["content"]


def _is_low(record: dict) -> bool:
    bucket = record.get("bucket")
    return (bucket or quality_bucket(record["score"])) == "low"


class ParaphraseAugmenter:
    """Adds a paraphrased copy of each selected record with a similarity-adjusted score.

    paraphrase_fn(prompt_text, response) -> rewritten response, where prompt_text is the last user
    turn (for example the SFT model answering `paraphrase_prompt(response)`). An empty rewrite is
    skipped. `select` picks the under-represented records ([inferred] the low bucket). Languages
    count as different only when both are detected and differ, so short texts are not penalised.
    """

    def __init__(
        self,
        paraphrase_fn: Callable[[str, str], str],
        encoder=None,
        alpha: float = 0.5,
        select: Callable[[dict], bool] = _is_low,
    ):
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError("reward.augment.alpha", f"alpha {alpha!r} must be in [0, 1]")
        self.paraphrase_fn = paraphrase_fn
        self.encoder = encoder
        self.alpha = alpha
        self.select = select

    def augment(self, records: Sequence[dict]) -> list[dict]:
        """New records (originals untouched) with is_augmented=True, adjusted score and bucket."""
        chosen, rewrites = [], []
        for i, rec in enumerate(records):
            if not self.select(rec):
                continue
            rewrite = self.paraphrase_fn(_prompt_text(rec, i), rec["response"]).strip()
            if rewrite:
                chosen.append(rec)
                rewrites.append(rewrite)
        if not chosen:
            return []
        encoder = self.encoder
        if encoder is None:
            from rlhf.core.embeddings import default_encoder

            encoder = default_encoder()
        cosines = encoder.cosine([rec["response"] for rec in chosen], rewrites).tolist()
        out = []
        for rec, rewrite, cos in zip(chosen, rewrites, cosines):
            lang_a, lang_b = detect_language(rec["response"]), detect_language(rewrite)
            same = lang_a == lang_b or "unknown" in (lang_a, lang_b)
            score = similarity_adjusted_score(rec["score"], cos, same, self.alpha)
            out.append(
                {**rec, "response": rewrite, "score": score, "bucket": quality_bucket(score), "is_augmented": True}
            )
        return out
