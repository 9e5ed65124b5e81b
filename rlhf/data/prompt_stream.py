"""Endless prompt batches drawn apart from the training loader: the refills of dynamic sampling
(docs/algorithms.md §1.3) come from here, so the loader's own order and its resume point are not
touched. Sharded by rank; its position is checkpointed with the run."""

from __future__ import annotations

from rlhf.core.errors import DataError
from rlhf.data.prompt_datamodule import prompt_batch
from rlhf.data.resumable_loader import cyclic_batch

STREAM_SEED_OFFSET = 104_729
"""Keeps the refill order apart from the loader's (which draws from seed + epoch)."""


class PromptStream:
    def __init__(self, records: list[dict], batch_size: int, seed: int = 0):
        if not records:
            raise DataError("no prompt records to refill batches from")
        self.records, self.batch_size, self.seed = records, batch_size, seed
        self.served = 0

    def next_batch(self) -> dict:
        picked = cyclic_batch(len(self.records), self.served, self.batch_size, self.seed, STREAM_SEED_OFFSET)
        self.served += 1
        return prompt_batch([self.records[i] for i in picked])

    def state_dict(self) -> dict:
        return {"served": self.served}

    def load_state_dict(self, state: dict) -> None:
        self.served = int(state["served"])
