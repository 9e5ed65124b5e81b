"""8-byte digests of row keys, so a pass over a long file can check its keys (repeats, or two files
holding the same keys) while keeping 8 bytes per row, not the keys or the rows.

Two of n different keys share a digest with odds about n² / 2^65 (below 1e-9 for a million rows);
a repeat found on digests is confirmed on the keys themselves before anything is reported.
"""

from __future__ import annotations

import hashlib
from array import array

import numpy as np


def key_digest(*parts: str) -> int:
    """The 8-byte digest of a key made of string parts."""
    return int.from_bytes(hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest(), "little")


def repeated(digests: array) -> set[int]:
    """The digests of array("Q") `digests` that occur more than once (sorted in place: no copy of a
    long file's digests)."""
    values = np.frombuffer(digests, dtype=np.uint64)
    values.sort()
    return set(values[1:][values[1:] == values[:-1]].tolist())
