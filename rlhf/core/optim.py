"""Optimizer and schedule factory shared by every stage (thesis Tables 3, 5, 8)."""

from __future__ import annotations

import torch
from transformers import get_cosine_schedule_with_warmup, get_constant_schedule_with_warmup, get_linear_schedule_with_warmup

from rlhf.core.errors import ConfigError

SCHEDULES = {
    "cosine": get_cosine_schedule_with_warmup,
    "linear": get_linear_schedule_with_warmup,
    "constant": lambda opt, num_warmup_steps, num_training_steps: get_constant_schedule_with_warmup(opt, num_warmup_steps),
}


def build_optimizer(params, cfg: dict, key: str = "optim") -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ConfigError(key, "no trainable parameters (is everything frozen?)")
    lr = float(cfg.get("lr", 1e-4))
    if lr < 0:
        raise ConfigError(f"{key}.lr", f"must be >= 0, got {lr}")
    return torch.optim.AdamW(
        params, lr=lr, betas=tuple(cfg.get("betas", (0.9, 0.999))), eps=float(cfg.get("eps", 1e-8)),
        weight_decay=float(cfg.get("weight_decay", 0.0)),
    )


def build_scheduler(optimizer, cfg: dict, total_steps: int, key: str = "optim") -> dict:
    name = cfg.get("schedule", "cosine")
    if name not in SCHEDULES:
        raise ConfigError(f"{key}.schedule", f"unknown schedule '{name}'; allowed: {sorted(SCHEDULES)}")
    warmup = int(round(float(cfg.get("warmup_ratio", 0.0)) * total_steps))
    scheduler = SCHEDULES[name](optimizer, num_warmup_steps=warmup, num_training_steps=max(total_steps, 1))
    return {"scheduler": scheduler, "interval": "step"}
