"""Reward-model metrics as torchmetrics, so they accumulate over an epoch and reduce across ranks.

Pairwise accuracy is Qwen's "test accuracy" (Qwen Table 4); the bucketed
regression errors are the thesis's absolute-RM tables (thesis Tables 6-7);
docs/methods.md §3.8. Bucket edges follow rlhf.data.absolute_labels (docs/methods.md §3.7 [default]).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from rlhf.data.absolute_labels import HIGH_MIN, LOW_MAX

BUCKETS = ("low", "mid", "high")


class PairwiseAccuracy(Metric):
    """acc = #{pairs with r_w > r_l} / #pairs; a tie counts as wrong (docs/methods.md §3.8 [default])."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, chosen: torch.Tensor, rejected: torch.Tensor) -> None:
        if chosen.shape != rejected.shape:
            raise ValueError(f"chosen {tuple(chosen.shape)} and rejected {tuple(rejected.shape)} must match")
        self.correct += (chosen > rejected).sum().float()
        self.total += chosen.numel()

    def compute(self) -> torch.Tensor:
        return self.correct / self.total.clamp_min(1)


class RewardMoments(Metric):
    """mean = Σr / n and sample std = sqrt((Σr² − n·mean²) / (n − 1)) of every score seen.

    These are what PPO normalises the reward with (docs/methods.md §4.3); the std is 0 for n < 2.
    Sums are kept in float64 so the one-pass variance does not cancel on large offsets.
    """

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total_sq", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, scores: torch.Tensor) -> None:
        scores = scores.detach().double().reshape(-1)
        self.total += scores.sum()
        self.total_sq += (scores**2).sum()
        self.count += scores.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        n = self.count.clamp_min(1)
        mean = self.total / n
        var = (self.total_sq - n * mean**2) / (self.count - 1) if self.count > 1 else torch.zeros_like(mean)
        return {"mean": mean.float(), "std": var.clamp_min(0).sqrt().float(), "count": self.count.float()}


def bucket_index(target: torch.Tensor) -> torch.Tensor:
    """0 low (y <= 0.40), 1 mid, 2 high (y >= 0.90): the rule of absolute_labels.quality_bucket."""
    return (target > LOW_MAX).long() + (target >= HIGH_MIN).long()


class BucketedRegressionError(Metric):
    """MSE = Σ(ŷ − y)² / n and MAE = Σ|ŷ − y| / n, overall and per target bucket (low/mid/high).

    The bucket is chosen by the target y, not the prediction. A bucket with no example reports
    NaN, so an empty bucket is never mistaken for a perfect one.
    """

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("sq", default=torch.zeros(len(BUCKETS), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("abs", default=torch.zeros(len(BUCKETS), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(len(BUCKETS), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must match")
        pred, target = pred.detach().double().reshape(-1), target.detach().double().reshape(-1)
        index = bucket_index(target)
        self.sq.index_add_(0, index, (pred - target) ** 2)
        self.abs.index_add_(0, index, (pred - target).abs())
        self.count.index_add_(0, index, torch.ones_like(pred))

    def compute(self) -> dict[str, torch.Tensor]:
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=self.count.device)
        n = self.count.sum()
        out = {"mse": self.sq.sum() / n if n > 0 else nan, "mae": self.abs.sum() / n if n > 0 else nan}
        for i, name in enumerate(BUCKETS):
            has = self.count[i] > 0
            out[f"mse_{name}"] = self.sq[i] / self.count[i] if has else nan
            out[f"mae_{name}"] = self.abs[i] / self.count[i] if has else nan
        return {k: v.float() for k, v in out.items()}
