"""The few collectives the RL stage needs, so every statistic is one over all ranks.

Distributed runs compute token-weighted means, whitening and running reward statistics on the
gathered batch and weight each rank's loss by its share of the global tokens, so W processes with
batch B give the numbers of one process with batch W·B. With one process every call is the identity.
"""

from __future__ import annotations

import torch
from torch import nn


class Collectives:
    def __init__(self, module):
        self.module = module

    @property
    def world_size(self) -> int:
        return self.module.trainer.world_size if self.module._trainer is not None else 1

    def sum_all(self, x: torch.Tensor) -> torch.Tensor:
        if self.world_size == 1:
            return x
        return self.module.trainer.strategy.reduce(x.clone(), reduce_op="sum")

    def gather_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of every rank stacked [W·B, ...], trailing axis padded to the widest rank."""
        if self.world_size == 1:
            return x
        if x.dim() == 2:
            width = int(self.module.trainer.strategy.reduce(torch.tensor(x.size(1), device=x.device), reduce_op="max"))
            x = nn.functional.pad(x, (0, width - x.size(1)))
        gathered = self.module.all_gather(x)
        return gathered.reshape(-1, *gathered.shape[2:])

    def local_rows(self, gathered: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a gathered tensor, cut back to its own width."""
        if self.world_size == 1:
            return gathered
        start = self.module.global_rank * like.size(0)
        return gathered[start:start + like.size(0), :like.size(1)]

    def global_means(self, stats: dict[str, torch.Tensor], weight: torch.Tensor) -> dict[str, torch.Tensor]:
        """Σ_ranks w·stat / Σ_ranks w for each local mean `stat` with weight w (token count)."""
        names = list(stats)
        packed = torch.stack([stats[n].detach().float() * weight for n in names] + [weight.float()])
        packed = self.sum_all(packed)
        return {n: packed[i] / packed[-1].clamp_min(1) for i, n in enumerate(names)}

    def on_every_rank(self, ok: bool) -> bool:
        """True only when `ok` holds on every rank, so all ranks skip (or step) together."""
        return float(self.sum_all(torch.tensor([float(ok)], device=self.module.device))) == self.world_size
