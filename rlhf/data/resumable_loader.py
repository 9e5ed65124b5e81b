"""Shuffled training batches whose position survives a checkpoint, so a stop mid-epoch resumes
at the very next batch instead of a new shuffle.

Lightning saves and restores any train loader that has `state_dict`/`load_state_dict`; a plain
`DataLoader` has neither. `ResumableLoader` draws one permutation per epoch from `seed + epoch`,
shards it by rank itself (so Lightning does not wrap it in a `DistributedSampler`), counts the
batches it has handed out and skips them after a restore.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch.utils.data import DataLoader


def rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def permutation(n: int, seed: int, shuffle: bool) -> list[int]:
    if not shuffle:
        return list(range(n))
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()


def cyclic_batch(n: int, served: int, batch_size: int, seed: int, stride: int) -> list[int]:
    """Indices of this rank's `served`-th batch of an endless stream over n items: cycle c draws a
    fresh permutation from seed + stride·(c + 1), sharded by rank, wrapping around when short."""
    rank, world = rank_and_world()
    per_cycle = max(n // (world * batch_size), 1)
    cycle, position = divmod(served, per_cycle)
    mine = permutation(n, seed + stride * (cycle + 1), True)[rank::world]
    return [mine[(position * batch_size + j) % len(mine)] for j in range(batch_size)]


class ResumableLoader:
    """Every rank gets ceil(N / W) examples per epoch (the permutation wraps around to fill the
    last rank, as `DistributedSampler` does), in batches of `batch_size` (the last one may be short).
    With `drop_last`, only the first floor(N / (W·B))·W·B positions of the permutation are used, so
    every batch on every rank is full and one process with batch B·W sees the same examples per step
    as W processes with batch B."""

    def __init__(self, dataset, batch_size: int, collate_fn: Callable, seed: int = 0, shuffle: bool = True,
                 num_workers: int = 0, drop_last: bool = False):
        self.dataset, self.batch_size, self.collate_fn = dataset, batch_size, collate_fn
        self.seed, self.shuffle, self.num_workers, self.drop_last = seed, shuffle, num_workers, drop_last
        self.epoch, self.served = 0, 0

    def _indices(self) -> list[int]:
        rank, world = rank_and_world()
        n = len(self.dataset)
        order = permutation(n, self.seed + self.epoch, self.shuffle)
        if self.drop_last:
            return order[:len(self) * world * self.batch_size][rank::world]
        per_rank = math.ceil(n / world)
        order = (order * math.ceil(per_rank * world / max(n, 1)))[:per_rank * world]
        return order[rank::world]

    def __len__(self) -> int:
        _, world = rank_and_world()
        if self.drop_last:
            return len(self.dataset) // (world * self.batch_size)
        return math.ceil(math.ceil(len(self.dataset) / world) / self.batch_size)

    def __iter__(self):
        if self.served >= len(self):
            # Lightning stops asking at len(self), so the previous epoch's generator never ran its tail.
            self.epoch, self.served = self.epoch + 1, 0
        mine = self._indices()
        batches = [mine[i:i + self.batch_size] for i in range(0, len(mine), self.batch_size)][self.served:]
        loader = DataLoader(self.dataset, batch_sampler=batches, collate_fn=self.collate_fn,
                            num_workers=self.num_workers)
        for batch in loader:
            self.served += 1
            yield batch
        self.epoch, self.served = self.epoch + 1, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "served": self.served}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.served = int(state["epoch"]), int(state["served"])
