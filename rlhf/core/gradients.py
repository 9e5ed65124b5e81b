"""Gradient checks shared by the manual-optimisation loop and the health callbacks."""

from __future__ import annotations

import torch


def grads_are_finite(optimizer: torch.optim.Optimizer) -> bool:
    """True when no gradient of the optimizer's parameters holds a NaN or inf."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())
