"""OASST label vectors -> one absolute target in [0, 1] per reply (thesis §5.1.2, §5.3.1).

Each reply carries Likert-derived labels in [0, 1] (violence, creativity, helpfulness, humor,
toxicity, quality). The thesis first trained on weighted sums (`w2`, `w3`), found the targets
bunched around the middle, and then used quality alone (docs/methods.md §3.5); all three stay selectable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from rlhf.core.errors import ConfigError, DataError

WEIGHT_PRESETS: dict[str, dict[str, float]] = {
    # thesis §5.3.1, docs/methods.md §3.5
    "w2": {
        "violence": -0.05,
        "creativity": 0.15,
        "helpfulness": 0.25,
        "humor": 0.05,
        "toxicity": -0.10,
        "quality": 0.40,
    },
    "w3": {
        "violence": 0.0,
        "creativity": 0.15,
        "helpfulness": 0.35,
        "humor": 0.0,
        "toxicity": -0.10,
        "quality": 0.40,
    },
    "quality": {"quality": 1.0},
}

LOW_MAX = 0.40  # y <= 0.40 is "low" (docs/methods.md §3.7 [default] edge)
HIGH_MIN = 0.90  # y >= 0.90 is "high"


def _resolve_weights(weights: Mapping[str, float] | str) -> Mapping[str, float]:
    if isinstance(weights, str):
        if weights not in WEIGHT_PRESETS:
            raise ConfigError(
                "reward.label_weights",
                f"unknown preset {weights!r}; allowed: {', '.join(WEIGHT_PRESETS)} or a dict label -> weight",
            )
        return WEIGHT_PRESETS[weights]
    if not weights or sum(weights.values()) <= 0:
        raise ConfigError(
            "reward.label_weights", f"weights {dict(weights)} must be non-empty with a positive sum"
        )
    return weights


def aggregate_labels(labels: Mapping[str, float | None], weights: Mapping[str, float] | str) -> float | None:
    """score = clip(Σ_k w'_k · label_k, 0, 1) over the labels present (docs/methods.md §3.5, §8.3.14).

    "Total" is T = Σ_k w_k over all weights (0.70 for w2, 0.80 for w3). A missing (absent or None)
    label drops its term and the present weights are rescaled, w'_k = w_k · T / Σ_present w_k, so
    they keep the original total [default]. The seed calls this a weighted average, but the weights
    do not sum to 1 and include negatives, so it is a weighted sum clipped to [0, 1].
    Returns None when "quality" is missing: the example is dropped.
    """
    weights = _resolve_weights(weights)
    if labels.get("quality") is None:
        return None
    present = {}
    for name in weights:
        value = labels.get(name)
        if value is None:
            continue
        if not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 <= value <= 1.0:
            raise DataError(f"label {name!r} is {value!r}; labels are numbers in [0, 1]")
        present[name] = float(value)
    total = sum(weights.values())
    present_total = sum(weights[name] for name in present)
    if present_total <= 0:
        raise DataError(
            f"labels present {sorted(present)} carry weight {present_total:g} <= 0, so the weights "
            f"cannot be rescaled to the total {total:g}; supply more labels or use weights='quality'"
        )
    score = sum(weights[name] * value for name, value in present.items()) * total / present_total
    return min(1.0, max(0.0, score))


def quality_bucket(y: float) -> str:
    """"low" (y <= 0.40), "mid" (0.40 < y < 0.90) or "high" (y >= 0.90) (docs/methods.md §3.7 [default])."""
    if math.isnan(y):
        raise DataError("cannot bucket a NaN score; scores are numbers in [0, 1]")
    if y <= LOW_MAX:
        return "low"
    if y >= HIGH_MIN:
        return "high"
    return "mid"


def likert_to_unit(values: Sequence[int], scale: int = 5) -> float:
    """mean_i (v_i − 1) / (scale − 1): Likert ratings 1..scale -> [0, 1], averaged over raters.

    Three raters on a 5-point scale give multiples of 1/12, as in the thesis's Table 2 examples
    (0.083, 0.167, 0.917).
    """
    if scale < 2:
        raise ConfigError("likert.scale", f"scale {scale} must be >= 2")
    if not values:
        raise DataError("no Likert ratings to average; need at least one rating")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= scale:
            raise DataError(f"Likert rating {v!r} is not an int in 1..{scale}")
    return sum((v - 1) / (scale - 1) for v in values) / len(values)
