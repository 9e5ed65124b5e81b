"""ICE-GRT manual annotation score: eight weighted criteria (ICE-GRT §4.3, Tables 2-3; docs/methods.md §5.2).

Each response is rated per criterion as positive (5), neutral (2) or negative (0).
  criterion score  = mean rating / 5, in %                      [inferred]
  overall          = Σ_c w_c · score_c / Σ_c w_c, Σ w = 29        [inferred; reproduces Table 3]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rlhf.annotators.criteria import ICE_GRT_WEIGHTS
from rlhf.core.errors import DataError

RATING_VALUES: dict[str, int] = {"positive": 5, "neutral": 2, "negative": 0}
MAX_RATING = 5


def criterion_score(ratings: Iterable[str]) -> float:
    """score = 100 · mean(value(rating)) / 5."""
    values = []
    for rating in ratings:
        if rating not in RATING_VALUES:
            raise ValueError(f"rating '{rating}' is not one of {sorted(RATING_VALUES)}")
        values.append(RATING_VALUES[rating])
    if not values:
        raise ValueError("criterion_score needs at least one rating")
    return 100.0 * sum(values) / len(values) / MAX_RATING


def overall_score(scores: Mapping[str, float], weights: Mapping[str, float] = ICE_GRT_WEIGHTS) -> float:
    """overall = Σ_c w_c · score_c / Σ_c w_c over the weighted criteria (all must be present)."""
    missing = [c for c in weights if c not in scores]
    if missing:
        raise ValueError(f"scores lack criteria {missing}; need all of {list(weights)}")
    return sum(weights[c] * scores[c] for c in weights) / sum(weights.values())


def score_annotations(rows: Iterable[dict], weights: Mapping[str, float] = ICE_GRT_WEIGHTS,
                      source: str | None = None) -> dict[str, dict]:
    """Rows {model, criterion, rating} -> {model: {criterion scores..., "overall": ...}}."""
    ratings: dict[str, dict[str, list[str]]] = {}
    for index, row in enumerate(rows, start=1):
        criterion, rating = str(row.get("criterion", "")).lower(), row.get("rating")
        if "model" not in row or criterion not in weights or rating not in RATING_VALUES:
            raise DataError(f"need 'model', 'criterion' in {list(weights)} and 'rating' in {sorted(RATING_VALUES)}; "
                            f"got {row!r}", source=source, record=index)
        ratings.setdefault(row["model"], {}).setdefault(criterion, []).append(rating)
    out = {}
    for model, per_criterion in ratings.items():
        scores = {c: criterion_score(r) for c, r in per_criterion.items()}
        scores["overall"] = overall_score(scores, weights) if all(c in scores for c in weights) else None
        out[model] = scores
    return out
