"""Agreement of an RM with a judge or with human rankings (thesis Tables 12-14; docs/methods.md §5.7).

agreement = (# comparisons where the RM prefers the same response as the reference) / (# comparisons)
Reference ties are left out by default (a tie names no preferred response); with
`reference_ties="count"` a reference tie is matched only by a predicted tie.

Judgment files are read once, line by line: each reference row is kept as one 8-byte word (its
comparison's digest and winner), and each predicted row is counted as it is read.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from rlhf.core.errors import ConfigError, DataError
from rlhf.data.jsonl import chunks
from rlhf.data.row_keys import key_digest
from rlhf.evaluate.stats import FLIP, WINNER_CODE

REFERENCE_TIES = ("exclude", "count")


def agreement_rate(predicted: Sequence[str], reference: Sequence[str], reference_ties: str = "exclude") -> dict:
    if len(predicted) != len(reference):
        raise ValueError(f"{len(predicted)} predicted vs {len(reference)} reference labels")
    counts = np.zeros((3, 3), dtype=np.int64)
    for p, r in zip(predicted, reference):
        counts[WINNER_CODE[p], WINNER_CODE[r]] += 1
    return agreement_from_counts(counts, reference_ties)


def agreement_from_counts(counts: np.ndarray, reference_ties: str = "exclude") -> dict:
    """agreement_rate from counts[predicted winner, reference winner] (codes of stats.WINNERS)."""
    if reference_ties not in REFERENCE_TIES:
        raise ConfigError("evaluate.reference_ties", f"'{reference_ties}' is not one of {REFERENCE_TIES}")
    kept = counts.copy()
    if reference_ties == "exclude":
        kept[:, WINNER_CODE["tie"]] = 0
    n, agree = int(kept.sum()), int(np.trace(kept))
    return {"n": n, "agree": agree, "rate": agree / n if n else None}


class ReferenceVerdicts:
    """The reference winner of each comparison (dataset, id, model_a, model_b), one 8-byte word per
    row: the comparison's digest with its lowest two bits replaced by the winner's code, sorted."""

    def __init__(self, rows: Iterable[dict]):
        words = array("Q")
        for row in rows:
            words.append((key_digest(*_comparison(row)) & ~3) | WINNER_CODE[row["winner"]])
        self.words = np.frombuffer(words, dtype=np.uint64) if words else np.zeros(0, dtype=np.uint64)
        self.words.sort()
        twice = int(((self.words[1:] >> 2) == (self.words[:-1] >> 2)).sum())
        if twice:
            raise DataError(f"{twice} comparisons (dataset, id, model pair) are judged more than once across the "
                            "reference judgments; give each one verdict")

    def winners(self, rows: Sequence[dict], flip: bool = False) -> np.ndarray:
        """The reference winner code of each row's comparison (its models swapped with `flip`), -1 where none."""
        if not len(self.words):
            return np.full(len(rows), -1)
        keys = np.fromiter(((key_digest(*_comparison(r, flip)) & ~3) for r in rows), dtype=np.uint64, count=len(rows))
        found = self.words[np.searchsorted(self.words, keys).clip(max=len(self.words) - 1)]
        return np.where(found >> 2 == keys >> 2, (found & 3).astype(np.int64), -1)


def _comparison(row: dict, flip: bool = False) -> tuple[str, str, str, str]:
    models = (str(row["model_b"]), str(row["model_a"])) if flip else (str(row["model_a"]), str(row["model_b"]))
    return (str(row.get("dataset", "all")), str(row["id"]), *models)


def judgment_agreement(predicted_rows: Iterable[dict], reference_rows: Iterable[dict],
                       reference_ties: str = "exclude") -> dict:
    """Join two judgment files on (dataset, id, model pair), flipping a predicted row whose models
    are in the other order, and report agreement overall and per dataset. The reference is read
    first and kept as ReferenceVerdicts; the predicted rows are counted as they are read."""
    if reference_ties not in REFERENCE_TIES:
        raise ConfigError("evaluate.reference_ties", f"'{reference_ties}' is not one of {REFERENCE_TIES}")
    reference = ReferenceVerdicts(reference_rows)
    confusion: dict[str, np.ndarray] = {}   # dataset -> counts [predicted winner, reference winner]
    for chunk in chunks(predicted_rows, 256):   # rows of a chunk are held: a few hundred KB
        same = reference.winners(chunk)
        flipped = reference.winners(chunk, flip=True)
        for row, ref_same, ref_flipped in zip(chunk, same.tolist(), flipped.tolist()):
            predicted = WINNER_CODE[row["winner"]]
            if ref_same < 0 and ref_flipped < 0:
                continue
            if ref_same < 0:   # the reference judged the models the other way round
                predicted, ref_same = WINNER_CODE[FLIP[row["winner"]]], ref_flipped
            counts = confusion.setdefault(str(row.get("dataset", "all")), np.zeros((3, 3), dtype=np.int64))
            counts[predicted, ref_same] += 1
    overall = sum(confusion.values(), np.zeros((3, 3), dtype=np.int64))
    return {"overall": agreement_from_counts(overall, reference_ties),
            "per_dataset": {d: agreement_from_counts(c, reference_ties) for d, c in sorted(confusion.items())}}


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
