"""Optimizer and schedule factory shared by every stage (thesis Tables 3, 5, 8)."""

from __future__ import annotations

import torch
from transformers import get_cosine_schedule_with_warmup, get_constant_schedule_with_warmup, get_linear_schedule_with_warmup

from rlhf.core.config import OptimConfig
from rlhf.core.errors import ConfigError
from rlhf.core.schema import as_config

SCHEDULES = {
    "cosine": get_cosine_schedule_with_warmup,
    "linear": get_linear_schedule_with_warmup,
    "constant": lambda opt, num_warmup_steps, num_training_steps: get_constant_schedule_with_warmup(opt, num_warmup_steps),
}


def build_optimizer(params, cfg: OptimConfig | dict, key: str = "optim") -> torch.optim.Optimizer:
    cfg = as_config(OptimConfig, cfg, key)
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ConfigError(key, "no trainable parameters (is everything frozen?)")
    return torch.optim.AdamW(params, lr=float(cfg.lr), betas=tuple(cfg.betas), eps=float(cfg.eps),
                             weight_decay=float(cfg.weight_decay))


def build_scheduler(optimizer, cfg: OptimConfig | dict, total_steps: int, key: str = "optim") -> dict:
    cfg = as_config(OptimConfig, cfg, key)
    warmup = int(round(float(cfg.warmup_ratio) * total_steps))
    scheduler = SCHEDULES[cfg.schedule](optimizer, num_warmup_steps=warmup, num_training_steps=max(total_steps, 1))
    return {"scheduler": scheduler, "interval": "step"}
