"""Rule-based stand-ins for the ICE-GRT manual criteria (ICE-GRT §4.3, docs/methods.md §5.2).

Each function maps a response to [0, 1], 1 = what a labeller would rate "positive". The shapes are
piecewise linear or fractional rather than pass/fail, so that two samples from a small chat model
usually differ a little, which is what a reward model learned from rankings needs to see.
Relevance needs an encoder and lives in `simulated.py`; everything here is pure string work.
"""

from __future__ import annotations

import re

from rlhf.annotators.word_lists import (
    NON_CONTENT_WORDS,
    PERSONAL_DATA_PATTERNS,
    POLITE_MARKERS,
    RUDE_WORDS,
    UNSAFE_TERMS,
)

WORD_PATTERN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
SENTENCE_END = ".!?"
CLOSING_CHARS = "\"')]*"
# ICE-GRT Table 2 rates "neutral" 2 out of 5; a reply with no tone markers either way gets that.
NEUTRAL_RATING = 2 / 5
# The eight manual criteria and their weights (ICE-GRT Table 2, Σ = 29): what the rules here stand
# in for (folded onto six in simulated.py) and what rlhf.evaluate.criteria scores human ratings by.
ICE_GRT_WEIGHTS: dict[str, int] = {
    "clarity": 6, "accuracy": 6, "completeness": 6,
    "safety": 3, "courtesy": 3, "comfortableness": 3,
    "conciseness": 1, "context": 1,
}


def words(text: str) -> list[str]:
    """Lower-case word tokens; apostrophes inside words are kept ("you're")."""
    return WORD_PATTERN.findall(text.lower().replace("\u2019", "'"))


def stem(word: str) -> str:
    """Crude stem so "tips"/"tip", "saving"/"save", "planning"/"plan" match: strip one suffix
    (-ies -> -y, -ing, -ed, -ly, -s), drop a final "e", undouble the last consonant, keep 5 characters."""
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    else:
        for suffix in ("ing", "ed", "ly", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
    if len(word) >= 4 and word.endswith("e"):
        word = word[:-1]
    if len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word[:5]


def content_stems(tokens: list[str]) -> set[str]:
    return {stem(t) for t in tokens if t not in NON_CONTENT_WORDS and not t.isdigit()}


def count_phrases(tokens: list[str], phrases: tuple[str, ...]) -> int:
    """How many distinct phrases occur as whole-word sequences in the tokens."""
    joined = " " + " ".join(tokens) + " "
    return sum(f" {phrase} " in joined for phrase in phrases)


POLITE_PATTERN = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in POLITE_MARKERS) + r")\b[!.,]?", re.IGNORECASE)


def without_polite_markers(text: str) -> str:
    """The text with courtesy phrases cut out, so an embedding of it measures topic alone and the
    relevance criterion does not punish the politeness the courtesy criterion rewards."""
    return " ".join(POLITE_PATTERN.sub(" ", text.replace("\u2019", "'")).split())


def relevance_from_cosine(cosine: float, band: tuple[float, float]) -> float:
    """relevance = clip((cos - lo) / (hi - lo), 0, 1).

    Measured with all-MiniLM-L6-v2: on-topic answers sit at cos 0.45-0.75 against their question,
    off-topic text at 0.0-0.15, so the default band (0.1, 0.8) keeps good answers below saturation.
    """
    lo, hi = band
    return min(1.0, max(0.0, (cosine - lo) / (hi - lo)))


def ends_properly(response: str) -> bool:
    """True when the text ends at a sentence end; a generation cut off at max_new_tokens does not."""
    tail = response.rstrip().rstrip(CLOSING_CHARS)
    return bool(tail) and tail[-1] in SENTENCE_END


def completeness(prompt_text: str, response: str, detail_words: int = 10) -> float:
    """completeness = 0.4 * coverage + 0.3 * ends_properly + 0.3 * detail.

    coverage = |K ∩ R| / |K| with K, R the content-word stems of prompt and response (1 if K empty);
    detail = min(1, |R \\ K| / detail_words), new content the reply adds beyond echoing the question.
    All three are things an instruction-following policy can improve: name what was asked about,
    finish the last sentence, and say something of substance.
    """
    response_tokens = words(response)
    if not response_tokens:
        return 0.0
    asked = content_stems(words(prompt_text))
    said = content_stems(response_tokens)
    coverage = len(asked & said) / len(asked) if asked else 1.0
    detail = min(1.0, len(said - asked) / detail_words)
    return 0.4 * coverage + 0.3 * float(ends_properly(response)) + 0.3 * detail


def conciseness(n_words: int, target_words: tuple[int, int]) -> float:
    """Trapezoid over the word count n with target band [lo, hi]:

    n / lo below the band, 1 inside it, max(0, 1 - (n - hi) / hi) above it (0 at twice hi).
    """
    lo, hi = target_words
    if n_words <= 0:
        return 0.0
    if n_words < lo:
        return n_words / lo
    if n_words <= hi:
        return 1.0
    return max(0.0, 1.0 - (n_words - hi) / hi)


def courtesy(response: str) -> float:
    """courtesy = clip(0.4 + 0.3 * min(p, 2) - 0.4 * r, 0, 1), p / r = distinct polite / rude phrases.

    0.4 is ICE-GRT's "neutral" (2 of 5); two polite markers reach "positive", one rude word
    pulls a neutral reply to "negative".
    """
    tokens = words(response)
    if not tokens:
        return 0.0
    polite = min(count_phrases(tokens, POLITE_MARKERS), 2)
    rude = count_phrases(tokens, RUDE_WORDS)
    return min(1.0, max(0.0, NEUTRAL_RATING + 0.3 * polite - 0.4 * rude))


def distinct_ngram_ratio(tokens: list[str], n: int) -> float | None:
    """|distinct n-grams| / |n-grams|; None when the text is shorter than n."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def no_repetition(response: str) -> float:
    """Mean of the distinct-2 and distinct-3 ratios (those that exist); 1 for a one-word reply.

    Unigrams are left out because function words repeat in any fluent text; repeated bi- and
    trigrams are what a looping small model produces.
    """
    tokens = words(response)
    if not tokens:
        return 0.0
    ratios = [r for r in (distinct_ngram_ratio(tokens, 2), distinct_ngram_ratio(tokens, 3)) if r is not None]
    return sum(ratios) / len(ratios) if ratios else 1.0


def safety(response: str) -> float:
    """safety = max(0, 1 - 0.5 * h), h = distinct unsafe terms + kinds of personal data written out."""
    tokens = words(response)
    if not tokens:
        return 0.0
    hits = count_phrases(tokens, UNSAFE_TERMS)
    hits += sum(re.search(pattern, response) is not None for pattern in PERSONAL_DATA_PATTERNS)
    return max(0.0, 1.0 - 0.5 * hits)
