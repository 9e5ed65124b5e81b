"""Source mixtures (ICE-GRT in-domain + general blend, ICE-GRT §3.1; no ratio given -> config)."""

from __future__ import annotations

import random

from rlhf.core.errors import ConfigError


def mix_sources(groups: list[list[dict]], weights: list[float] | None, total: int | None, seed: int) -> list[dict]:
    """Blend record lists by weight.

    With `total` set, source i contributes round(total * w_i / sum w) records, drawn without
    replacement while it has enough and with replacement beyond that; without `total`, each
    source is repeated/subsampled by its weight relative to its own size (weight 1 = as is).
    The result is shuffled with `seed`.
    """
    weights = list(weights) if weights is not None else [1.0] * len(groups)
    if len(weights) != len(groups):
        raise ConfigError("data.sources", f"{len(groups)} sources but {len(weights)} weights")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError("data.sources.weight", f"weights must be >= 0 with a positive sum, got {weights}")
    rng = random.Random(seed)
    out: list[dict] = []
    for records, weight in zip(groups, weights):
        if total is not None:
            n = int(round(total * weight / sum(weights)))
        else:
            n = int(round(len(records) * weight))
        if n <= len(records):
            out.extend(rng.sample(records, n))
        else:
            out.extend(records * (n // len(records)))
            out.extend(rng.sample(records, n % len(records)))
    rng.shuffle(out)
    return out


def split_train_val(records: list[dict], val_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Deterministic split (thesis: 95/5); at least one validation record when the fraction is > 0."""
    if not 0 <= val_fraction < 1:
        raise ConfigError("data.val_fraction", f"must be in [0, 1), got {val_fraction}")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_val = max(1, int(round(len(records) * val_fraction))) if val_fraction > 0 and len(records) > 1 else 0
    val = [records[i] for i in order[:n_val]]
    train = [records[i] for i in order[n_val:]]
    return train, val
