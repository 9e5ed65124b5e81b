"""Carry the random-number generators' state in every Lightning checkpoint.

Lightning restores weights, optimizer and loop counters but not the RNGs, so after a resume
dropout masks and the next epoch's shuffle differ from an uninterrupted run. Saving the states
with the checkpoint and restoring them at load makes a resumed run continue the same random
stream. The states are stored as tensors and plain lists so the checkpoint still
loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from lightning.pytorch import Callback


def collect_rng_states() -> dict:
    """torch (CPU and every CUDA device), numpy and python states, in weights_only-safe types."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"], n["cached"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


class RNGStateCheckpoint(Callback):
    def state_dict(self) -> dict:
        return collect_rng_states()

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            restore_rng_states(state_dict)
