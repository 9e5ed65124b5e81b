"""Builds the RL step's models and optimizers (docs/methods.md §4.2, §4.10): the actor (LoRA or
full), the reference (a frozen copy only under full fine-tuning: under LoRA the adapter-disabled
actor is the reference), the critic of critic.kind, and one optimizer + scheduler per trained part."""

from __future__ import annotations

import copy

from torch import nn

from rlhf.core.config import AdapterConfig, ModelConfig
from rlhf.core.lora import apply_lora
from rlhf.core.models import load_backbone
from rlhf.core.optim import build_optimizer, build_scheduler
from rlhf.core.sharding import shard_model
from rlhf.rl.config import CriticConfig, PPOModuleConfig
from rlhf.rl.critic import separate_critic, value_head


def disable_dropout(model: nn.Module) -> None:
    """p = 0 everywhere: with dropout on, the training forward would not reproduce the rollout's
    log-probs and KL(π‖π_ref) would not be 0 at step 0 (docs/methods.md §4.10)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


def build_policy_parts(spec: ModelConfig, tokenizer, peft: AdapterConfig | None, critic_cfg: CriticConfig,
                       no_dropout: bool, seed: int, device_mesh=None) -> dict:
    """{actor, reference, critic, value_head}, each None where the configuration has none; sharded
    with FSDP2 when a device mesh is given, so the optimizers only ever see sharded parameters."""
    base = load_backbone(spec, tokenizer)
    if no_dropout:
        disable_dropout(base)
    parts = dict(actor=None, reference=None, critic=None, value_head=None)
    if not (peft and peft.enabled):
        parts["reference"] = copy.deepcopy(base).requires_grad_(False).eval()
    if critic_cfg.kind == "value_head":
        parts["value_head"] = value_head(base.config.hidden_size, base.dtype)
    elif critic_cfg.kind != "none":
        parts["critic"] = separate_critic(critic_cfg, base, seed)
        if no_dropout:
            disable_dropout(parts["critic"])
    parts["actor"] = apply_lora(base, peft)
    if no_dropout:
        disable_dropout(parts["actor"])
    if device_mesh is not None:
        for part in parts.values():
            if part is not None:
                shard_model(part, device_mesh, spec.fsdp_param_dtype)
    return parts


def build_optimizers(actor: nn.Module, critic: nn.Module | None, cfg: PPOModuleConfig, total_steps: int, key: str):
    """([actor, critic] optimizers, their schedulers), or the actor's alone when there is no critic."""
    actor_opt = build_optimizer(actor.parameters(), cfg.actor_optim, f"{key}.actor_optim")
    optimizers = [actor_opt]
    schedulers = [build_scheduler(actor_opt, cfg.actor_optim, total_steps, f"{key}.actor_optim")]
    if critic is not None:
        critic_opt = build_optimizer(critic.parameters(), cfg.critic_optim, f"{key}.critic_optim")
        optimizers.append(critic_opt)
        schedulers.append(build_scheduler(critic_opt, cfg.critic_optim, total_steps, f"{key}.critic_optim"))
    return optimizers, schedulers
