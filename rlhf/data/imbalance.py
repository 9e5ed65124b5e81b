"""Class-imbalance handling for the absolute RM's quality targets (thesis §5.3.1, docs/methods.md §3.7).

Only ~11 % of the training replies are in the low bucket (4,104 of 38,852), so the RM learns to
predict the middle. The thesis combines four remedies, named by the variant grammar
`<loss> + <sampling...> + <weighting>` of its Tables 6-7; this module parses such a name and
applies it. Records are dicts with at least "score" in [0, 1]; every function returns a new list
of new dicts with "bucket", "weight" and "is_augmented" filled in when missing.
"""

from __future__ import annotations

import math
import random
import re
from bisect import bisect_right
from collections.abc import Sequence

from rlhf.data.absolute_labels import HIGH_MIN, LOW_MAX, quality_bucket
from rlhf.core.errors import ConfigError, DataError

Record = dict


def _prepared(records: Sequence[Record]) -> list[Record]:
    """Copies of the records with the bookkeeping keys filled in and the score checked."""
    out = []
    for i, rec in enumerate(records):
        score = rec.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or math.isnan(score) or not 0.0 <= score <= 1.0:
            raise DataError(f"record {i}: 'score' is {score!r}; need a number in [0, 1]", record=i)
        new = dict(rec)
        new.setdefault("bucket", quality_bucket(score))
        new.setdefault("weight", 1.0)
        new.setdefault("is_augmented", False)
        out.append(new)
    return out


def oversample_low(records: Sequence[Record], factor: int = 2) -> list[Record]:
    """`over_s`: every low-bucket record appears `factor` times (4,104 -> 8,208; docs/methods.md §3.7).

    The extra copies are appended after the original list, in the original order.
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ConfigError("reward.oversample_factor", f"factor {factor!r} must be an int >= 1")
    out = _prepared(records)
    low = [rec for rec in out if rec["bucket"] == "low"]
    return out + [dict(rec) for _ in range(factor - 1) for rec in low]


def mid_bin_edges(bins: int = 5) -> list[float]:
    """Equal-width edges over (0.40, 0.90) [default]; rounded so 0.6 is the float 0.6, not 0.6000000000000001."""
    width = (HIGH_MIN - LOW_MAX) / bins
    return [round(LOW_MAX + i * width, 12) for i in range(bins + 1)]


def stratified_undersample_mid(records: Sequence[Record], n_total: int, bins: int = 5, seed: int = 0) -> list[Record]:
    """`under_s_8k` / `under_s_16k`: cut the mid bucket to about n_total, stratified by score.

    Bin i covers [edge_i, edge_(i+1)) of `mid_bin_edges` (the first bin is open at 0.40). Each bin
    keeps n_total // bins records drawn without replacement (the first n_total % bins bins one
    more); a bin with fewer keeps all of them, and the shortfall is not moved to other bins
    (docs/methods.md §3.7 [default]). Low and high records are untouched; the original order is kept.
    """
    if isinstance(n_total, bool) or not isinstance(n_total, int) or n_total < 0:
        raise ConfigError("reward.undersample_n", f"n_total {n_total!r} must be an int >= 0")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ConfigError("reward.undersample_bins", f"bins {bins!r} must be an int >= 1")
    out = _prepared(records)
    edges = mid_bin_edges(bins)
    by_bin: list[list[int]] = [[] for _ in range(bins)]
    for i, rec in enumerate(out):
        if rec["bucket"] == "mid":
            b = min(max(bisect_right(edges, rec["score"]) - 1, 0), bins - 1)
            by_bin[b].append(i)
    rng = random.Random(seed)
    keep: set[int] = set()
    for b, members in enumerate(by_bin):
        quota = n_total // bins + (1 if b < n_total % bins else 0)
        keep.update(members if len(members) <= quota else rng.sample(members, quota))
    return [rec for i, rec in enumerate(out) if rec["bucket"] != "mid" or i in keep]


def apply_loss_weights(
    records: Sequence[Record],
    strength: float | None = None,
    constant: float | None = None,
    mode: str = "scaled",
) -> list[Record]:
    """Per-example loss weights for the low bucket (`wgt_s_<s>`, `wgt_<c>`; docs/methods.md §3.7).

    W = N_train / N_under, with N_train = len(records) and N_under the low-bucket count, both
    counted on the records given (so after sampling and augmentation): 42,956 / 8,208 = 5.23
    after `over_s`. The seed's "W at s strength" is read as [default] mode "scaled": weight s·W
    on low examples and 1 elsewhere; mode "one_plus" reads it as 1 + s·(W − 1), which is 1 at
    s = 0 and W at s = 1. `constant` c instead puts weight c on the low bucket (`wgt_1_4` -> 1.4).
    Every other record gets weight 1. With neither given, all weights are 1.
    """
    if strength is not None and constant is not None:
        raise ConfigError("reward.variant", "give a weight strength (wgt_s_*) or a constant (wgt_*), not both")
    if mode not in ("scaled", "one_plus"):
        raise ConfigError("reward.weight_mode", f"unknown mode {mode!r}; allowed: scaled, one_plus")
    for name, value in (("strength", strength), ("constant", constant)):
        if value is not None and not value >= 0:
            raise ConfigError("reward.variant", f"weight {name} {value!r} must be a number >= 0")
    out = _prepared(records)
    n_under = sum(rec["bucket"] == "low" for rec in out)
    low_weight = 1.0
    if constant is not None:
        low_weight = float(constant)
    elif strength is not None and n_under:
        w = len(out) / n_under
        low_weight = strength * w if mode == "scaled" else 1.0 + strength * (w - 1.0)
    for rec in out:
        rec["weight"] = low_weight if rec["bucket"] == "low" else 1.0
    return out


LOSS_NAMES = ("logistic", "sig+mse", "mse")
_UNDER = re.compile(r"under_s_(\d+)k")
_WGT_S = re.compile(r"wgt_s_(\d)(\d*)")
_WGT_C = re.compile(r"wgt_(\d+)(?:_(\d+))?")
_ALLOWED = "logistic, sig+mse, mse, augment, over_s, under_s_<N>k, wgt_s_<digits>, wgt_<int>[_<decimals>]"


def parse_variant(name: str) -> dict:
    """Parse a thesis variant name (Tables 6-7), e.g. "logistic+augment+under_s_8k+wgt_s_075".

    Parts are joined by "+" (spaces allowed). `wgt_s_05` -> strength 0.5, `wgt_s_075` -> 0.75
    (first digit is the units); `wgt_1_4` -> constant 1.4 ("_" is the decimal point);
    `under_s_8k` -> 8,000. The loss part is optional: without it "loss" is None and the
    configured loss applies (Table 7's rows name none; they are all logistic).
    """
    variant = {
        "loss": None,
        "augment": False,
        "oversample": False,
        "undersample_n": None,
        "weight_strength": None,
        "weight_constant": None,
    }
    parts = re.split(r"\s*\+\s*", name.strip()) if name.strip() else []
    for i in range(len(parts) - 1, 0, -1):
        if parts[i - 1 : i + 1] == ["sig", "mse"]:
            parts[i - 1 : i + 1] = ["sig+mse"]

    def set_once(key: str, value, part: str) -> None:
        if variant[key] not in (None, False):
            raise ConfigError("reward.variant", f"{name!r} sets {key} twice (at part {part!r})")
        variant[key] = value

    for part in parts:
        if part in LOSS_NAMES:
            set_once("loss", part, part)
        elif part == "augment":
            set_once("augment", True, part)
        elif part == "over_s":
            set_once("oversample", True, part)
        elif m := _UNDER.fullmatch(part):
            set_once("undersample_n", int(m[1]) * 1000, part)
        elif m := _WGT_S.fullmatch(part):
            set_once("weight_strength", float(f"{m[1]}.{m[2] or 0}"), part)
        elif m := _WGT_C.fullmatch(part):
            set_once("weight_constant", float(f"{m[1]}.{m[2] or 0}"), part)
        else:
            raise ConfigError("reward.variant", f"unknown part {part!r} in {name!r}; allowed: {_ALLOWED}")
    if variant["weight_strength"] is not None and variant["weight_constant"] is not None:
        raise ConfigError("reward.variant", f"{name!r} gives both wgt_s_* and wgt_*; choose one weighting")
    return variant


def apply_variant(
    records: Sequence[Record],
    variant: dict,
    seed: int,
    augmenter=None,
    weight_mode: str = "scaled",
) -> list[Record]:
    """Apply a parsed variant in the order augment, oversample, undersample, weights.

    `augmenter` is anything with `.augment(records) -> new records` (a ParaphraseAugmenter); its
    output is added on top of the originals (docs/methods.md §3.7), so later steps see it too.
    """
    out = _prepared(records)
    if variant.get("augment"):
        if augmenter is None:
            raise ConfigError("reward.variant", "'augment' needs a paraphrase augmenter; pass augmenter=")
        out = out + _prepared(augmenter.augment(out))
    if variant.get("oversample"):
        out = oversample_low(out)
    if variant.get("undersample_n") is not None:
        out = stratified_undersample_mid(out, variant["undersample_n"], seed=seed)
    return apply_loss_weights(
        out,
        strength=variant.get("weight_strength"),
        constant=variant.get("weight_constant"),
        mode=weight_mode,
    )
