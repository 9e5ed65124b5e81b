"""Running mean and variance of a stream of values, for normalising rewards as they arrive
(PPO's score normalisation in rlhf.rl, the CRS mix in rlhf.rewards)."""

from __future__ import annotations

import math

import torch


class RunningMeanStd:
    """Mean and population variance of every value seen so far, merged batch by batch (Chan et al.).

    Held as Python floats in float64 so long runs do not drift and the state checkpoints as plain
    numbers. Before the first update mean = std = 0.
    """

    def __init__(self) -> None:
        self.mean = 0.0
        self.var = 0.0
        self.count = 0

    @property
    def std(self) -> float:
        return math.sqrt(self.var)

    def update(self, x: torch.Tensor) -> None:
        """Merge batch (n_b, μ_b, σ²_b) into (n, μ, σ²): δ = μ_b − μ, n' = n + n_b,
        μ' = μ + δ n_b/n', σ²' = (n σ² + n_b σ²_b + δ² n n_b/n') / n'."""
        values = x.detach().reshape(-1).to(torch.float64)
        n_batch = values.numel()
        if n_batch == 0:
            return
        batch_mean = float(values.mean())
        batch_var = float(values.var(unbiased=False))
        total = self.count + n_batch
        delta = batch_mean - self.mean
        self.var = (
            self.count * self.var + n_batch * batch_var + delta**2 * self.count * n_batch / total
        ) / total
        self.mean += delta * n_batch / total
        self.count = total

    def normalize(
        self,
        x: torch.Tensor,
        subtract_mean: bool = True,
        divide_std: bool = False,
        eps: float = 1e-8,
    ) -> torch.Tensor:
        """(x − μ) / (σ + ε), each part switchable; mean-only is the Qwen reading (docs/methods.md §8.3.6)."""
        if subtract_mean:
            x = x - self.mean
        if divide_std:
            x = x / (self.std + eps)
        return x

    def state_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.mean = float(state["mean"])
        self.var = float(state["var"])
        self.count = int(state["count"])
