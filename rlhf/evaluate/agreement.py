"""Agreement of an RM with a judge or with human rankings (thesis Tables 12-14; docs/methods.md §5.7).

agreement = (# comparisons where the RM prefers the same response as the reference) / (# comparisons)
Reference ties are left out by default (a tie names no preferred response); with
`reference_ties="count"` a reference tie is matched only by a predicted tie.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from rlhf.core.errors import ConfigError
from rlhf.evaluate.stats import FLIP

REFERENCE_TIES = ("exclude", "count")


def agreement_rate(predicted: Sequence[str], reference: Sequence[str], reference_ties: str = "exclude") -> dict:
    if reference_ties not in REFERENCE_TIES:
        raise ConfigError("evaluate.reference_ties", f"'{reference_ties}' is not one of {REFERENCE_TIES}")
    if len(predicted) != len(reference):
        raise ValueError(f"{len(predicted)} predicted vs {len(reference)} reference labels")
    pairs = [(p, r) for p, r in zip(predicted, reference) if not (r == "tie" and reference_ties == "exclude")]
    agree = sum(1 for p, r in pairs if p == r)
    return {"n": len(pairs), "agree": agree, "rate": agree / len(pairs) if pairs else None}


def _index(rows: Iterable[dict]) -> dict:
    return {(str(r.get("dataset", "all")), str(r["id"]), r["model_a"], r["model_b"]): r["winner"] for r in rows}


def judgment_agreement(predicted_rows: Iterable[dict], reference_rows: Iterable[dict],
                       reference_ties: str = "exclude") -> dict:
    """Join two judgment files on (dataset, id, model pair), flipping a predicted row whose models
    are in the other order, and report agreement overall and per dataset."""
    reference = _index(reference_rows)
    joined: dict[str, tuple[list, list]] = {}
    for (dataset, rid, model_a, model_b), winner in _index(predicted_rows).items():
        if (dataset, rid, model_a, model_b) in reference:
            ref = reference[(dataset, rid, model_a, model_b)]
        elif (dataset, rid, model_b, model_a) in reference:
            ref, winner = reference[(dataset, rid, model_b, model_a)], FLIP[winner]
        else:
            continue
        predicted, refs = joined.setdefault(dataset, ([], []))
        predicted.append(winner)
        refs.append(ref)
    every_p = [w for p, _ in joined.values() for w in p]
    every_r = [w for _, r in joined.values() for w in r]
    return {"overall": agreement_rate(every_p, every_r, reference_ties),
            "per_dataset": {d: agreement_rate(p, r, reference_ties) for d, (p, r) in sorted(joined.items())}}


def ranking_pair_agreement(scores: Mapping, ranks: Mapping) -> dict:
    """Over candidate pairs with different human ranks: agree when the better-ranked one (lower rank)
    has the strictly higher RM score (thesis Table 14, agreement with human rankings)."""
    candidates = [c for c in ranks if c in scores]
    n = agree = 0
    for i, x in enumerate(candidates):
        for y in candidates[i + 1:]:
            if ranks[x] == ranks[y]:
                continue
            better, worse = (x, y) if ranks[x] < ranks[y] else (y, x)
            n += 1
            agree += scores[better] > scores[worse]
    return {"n": n, "agree": agree, "rate": agree / n if n else None}
