"""The metrics one RL step logs (docs/methods.md §4.11): the update's statistics, reward and
length statistics over every rank's rows, each reward part on its own when there are several (or
details to show), and the seconds spent generating, scoring and training."""

from __future__ import annotations

import torch


def step_metrics(stats: dict, raw: torch.Tensor, scores: torch.Tensor, generation, ranks, skipped_updates: int,
                 train_actor: bool, reward_result, seconds: dict, device) -> tuple[dict, bool]:
    """(metrics, whether the reward's parts are logged apart from its total)."""
    all_raw, all_scores = ranks.gather_rows(raw), ranks.gather_rows(scores)
    stats = {**stats,
             "reward_raw_mean": all_raw.mean(), "reward_raw_std": all_raw.std(unbiased=False),
             "reward_mean": all_scores.mean(), "reward_std": all_scores.std(unbiased=False),
             "response_length": ranks.gather_rows(generation.response_mask.sum(1).float()).mean(),
             "ended_fraction": ranks.gather_rows(generation.ended.float()).mean(),
             "skipped_updates": torch.tensor(float(skipped_updates)),
             "critic_warmup": torch.tensor(float(not train_actor))}
    metrics = {f"train/{k}": v.detach().float().to(device) for k, v in stats.items()}
    parts = len(reward_result.parts) > 1 or any(reward_result.details.values())
    if parts:  # one reward without details is train/reward_raw_* already
        metrics.update({k: torch.tensor(v, device=device)
                        for k, v in reward_result.metrics(prefix="train/reward").items()})
    for name, value in seconds.items():
        metrics[f"time/{name}"] = torch.tensor(value, device=device)
    return metrics, parts
