"""AdamW and learning-rate schedules from rlhf/core/optim.py, checked against values worked out by hand.

Schedules are stepped through a real optimizer (LambdaLR multiplies the configured lr), so the
numbers below are what a training run logs as `lr` at each optimizer step.
"""

from __future__ import annotations

import math

import pytest
import torch

from rlhf.core.errors import ConfigError
from rlhf.core.optim import build_optimizer, build_scheduler


def one_param(value: float = 1.0) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor([value]))


def lrs_over(schedule: str, lr: float, total_steps: int, warmup_ratio: float, steps: int) -> list[float]:
    """The lr in force before each of `steps` optimizer steps (index i = after i scheduler steps)."""
    cfg = {"lr": lr, "schedule": schedule, "warmup_ratio": warmup_ratio}
    optimizer = build_optimizer([one_param()], cfg)
    scheduler = build_scheduler(optimizer, cfg, total_steps)["scheduler"]
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    seen.append(optimizer.param_groups[0]["lr"])
    return seen


# ---------------------------------------------------------------- optimizer


def test_optimizer_is_adamw_with_the_configured_hyperparameters():
    cfg = {"lr": 3e-4, "betas": [0.8, 0.95], "eps": 1e-6, "weight_decay": 0.1}
    optimizer = build_optimizer([one_param()], cfg)
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch.optim.AdamW)
    assert group["lr"] == 3e-4
    assert tuple(group["betas"]) == (0.8, 0.95)
    assert group["eps"] == 1e-6
    assert group["weight_decay"] == 0.1


def test_optimizer_defaults_when_keys_are_missing():
    # thesis defaults: lr 1e-4, Adam betas (0.9, 0.999), eps 1e-8, no weight decay
    group = build_optimizer([one_param()], {}).param_groups[0]
    assert (group["lr"], tuple(group["betas"]), group["eps"], group["weight_decay"]) == (1e-4, (0.9, 0.999), 1e-8, 0.0)


def test_first_adamw_step_decays_weights_decoupled_from_the_gradient():
    # p = 1, loss = 0.5 * p -> g = 0.5; lr = 0.1, wd = 0.5.
    # AdamW: p <- p - lr*wd*p = 1 - 0.05 = 0.95, then the first Adam step has m_hat = g, v_hat = g^2,
    # so p <- 0.95 - lr * g / (|g| + eps) = 0.95 - 0.1 = 0.85.
    # (L2-in-the-gradient Adam would give g' = 0.5 + 0.5 = 1 and the same unit step: 0.9.)
    p = one_param(1.0)
    optimizer = build_optimizer([p], {"lr": 0.1, "weight_decay": 0.5, "eps": 1e-8})
    (0.5 * p).sum().backward()
    optimizer.step()
    assert p.item() == pytest.approx(0.85, abs=1e-6)


def test_frozen_parameters_are_left_out_and_all_frozen_is_a_config_error():
    trainable, frozen = one_param(), one_param()
    frozen.requires_grad_(False)
    optimizer = build_optimizer([trainable, frozen], {"lr": 1e-3})
    params = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(params) == 1 and params[0] is trainable
    with pytest.raises(ConfigError, match="no trainable parameters"):
        build_optimizer([frozen], {"lr": 1e-3}, key="reward.optim")


def test_optimizer_accepts_a_generator_of_parameters():
    # model.parameters() is a generator: filtering it must not consume it before AdamW sees it
    model = torch.nn.Linear(2, 1)
    optimizer = build_optimizer(model.parameters(), {"lr": 1e-3})
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == 3


@pytest.mark.parametrize("bad", [{"lr": -1.0}, {"schedule": "step"}])
def test_bad_settings_are_config_errors(bad):
    with pytest.raises(ConfigError):
        optimizer = build_optimizer([one_param()], bad)
        build_scheduler(optimizer, bad, total_steps=10)


# ---------------------------------------------------------------- schedules


def test_scheduler_steps_every_optimizer_step():
    cfg = {"lr": 1e-3}
    optimizer = build_optimizer([one_param()], cfg)
    out = build_scheduler(optimizer, cfg, total_steps=10)
    assert out["interval"] == "step"
    assert isinstance(out["scheduler"], torch.optim.lr_scheduler.LambdaLR)


def test_cosine_with_warmup_by_hand():
    # total 10, warmup_ratio 0.2 -> 2 warmup steps; lr 1.0 so the multiplier is the lr.
    # warmup: step s < 2 -> s / 2: 0, 0.5
    # after:  progress q = (s - 2) / 8, lr = 0.5 * (1 + cos(pi * q))
    #   s=2 q=0    -> 1
    #   s=4 q=0.25 -> 0.5 * (1 + 0.707107) = 0.853553
    #   s=6 q=0.5  -> 0.5
    #   s=8 q=0.75 -> 0.5 * (1 - 0.707107) = 0.146447
    #   s=10 q=1   -> 0
    lrs = lrs_over("cosine", 1.0, total_steps=10, warmup_ratio=0.2, steps=10)
    expected = {0: 0.0, 1: 0.5, 2: 1.0, 4: 0.853553, 6: 0.5, 8: 0.146447, 10: 0.0}
    for step, value in expected.items():
        assert lrs[step] == pytest.approx(value, abs=1e-6), step
    # strictly decreasing after the warmup
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:]))


def test_linear_with_warmup_by_hand():
    # warmup 2 of 10 at lr 0.01: s / 2 * 0.01, then (10 - s) / 8 * 0.01
    lrs = lrs_over("linear", 0.01, total_steps=10, warmup_ratio=0.2, steps=10)
    expected = [0.0, 0.005, 0.01, 0.00875, 0.0075, 0.00625, 0.005, 0.00375, 0.0025, 0.00125, 0.0]
    assert lrs == pytest.approx(expected, abs=1e-9)


def test_constant_with_warmup_by_hand():
    # warmup 3 of 10 (0.3 * 10): 0, 1/3, 2/3 of lr, then lr for the rest of the run and beyond it
    lrs = lrs_over("constant", 0.3, total_steps=10, warmup_ratio=0.3, steps=12)
    assert lrs[:4] == pytest.approx([0.0, 0.1, 0.2, 0.3], abs=1e-9)
    assert lrs[4:] == pytest.approx([0.3] * 9, abs=1e-9)


def test_no_warmup_starts_at_the_full_lr():
    # warmup_ratio 0 (the default): cosine starts at lr; halfway through 10 steps it is lr/2
    lrs = lrs_over("cosine", 2.0, total_steps=10, warmup_ratio=0.0, steps=5)
    assert lrs[0] == pytest.approx(2.0)
    assert lrs[5] == pytest.approx(1.0, abs=1e-6)
    assert lrs[1] == pytest.approx(1.0 + math.cos(math.pi / 10), abs=1e-6)  # 2 * 0.5 * (1 + cos(pi/10))


def test_warmup_steps_are_the_rounded_fraction_of_the_run():
    # 0.15 * 10 = 1.5 -> round -> 2 warmup steps: lr 0, 0.5, then the full lr at step 2
    lrs = lrs_over("constant", 1.0, total_steps=10, warmup_ratio=0.15, steps=3)
    assert lrs[:3] == pytest.approx([0.0, 0.5, 1.0])


def test_zero_step_run_does_not_divide_by_zero():
    # total_steps 0 is treated as 1: the schedule is built and the first lr is the configured one
    cfg = {"lr": 1e-3, "schedule": "linear"}
    optimizer = build_optimizer([one_param()], cfg)
    build_scheduler(optimizer, cfg, total_steps=0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
