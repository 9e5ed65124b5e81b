"""PPOModule: actor, critic, reference and a frozen reward under manual optimisation (docs/methods.md §4).

One training_step is one PPO iteration (docs/methods.md §4.8): roll out -> score -> shape ->
build the experience (old/reference log-probs, values, KL-penalised rewards, GAE, whitening) ->
update `epochs` times over minibatches -> KL controller. This file only wires the parts:
rollout_step.py, shaping.py, experience_builder.py, update.py, critic.py; the formulas live in
losses.py, advantages.py, kl_control.py and score_normalization.py; docs/architecture.md draws it.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf
from torch import nn

from rlhf.core.config import AdapterConfig, ModelConfig
from rlhf.core.errors import ConfigError
from rlhf.core.export import export_hf, save_pretrained_atomic
from rlhf.core.lora import apply_lora
from rlhf.core.models import load_backbone, load_backbone_tokenizer
from rlhf.core.optim import build_optimizer, build_scheduler
from rlhf.core.schema import as_config, to_dict
from rlhf.core.sharding import shard_model
from rlhf.rewards.build import build_reward
from rlhf.rl.collectives import Collectives
from rlhf.rl.config import PPOModuleConfig, algorithm_problems
from rlhf.rl.critic import separate_critic, value_head
from rlhf.rl.dynamic_sampling import dynamic_sample
from rlhf.rl.experience_builder import build_experience
from rlhf.rl.kl_control import build_kl_controller
from rlhf.rl.policy import PolicyModels
from rlhf.rl.rollout_step import Rollout, roll_out
from rlhf.rl.samples import log_samples
from rlhf.rl.shaping import ScoreShaper
from rlhf.rl.update import UpdateLoop

log = logging.getLogger(__name__)
KEY = "stage.module"


def _disable_dropout(model: nn.Module) -> None:
    """p = 0 everywhere: with dropout on, the training forward would not reproduce the rollout's
    log-probs and KL(π‖π_ref) would not be 0 at step 0 (docs/methods.md §4.10)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


class PPOModule(L.LightningModule):
    def __init__(self, model, peft=None, reward_fn=None, algorithm=None, critic=None, rollout=None, score=None,
                 kl=None, update=None, actor_optim=None, critic_optim=None, log_samples_every_n_steps: int = 10,
                 disable_dropout: bool = True, export_critic: bool = True, seed: int = 0):
        super().__init__()
        sections = dict(algorithm=algorithm, critic=critic, rollout=rollout, score=score, kl=kl, update=update,
                        actor_optim=actor_optim, critic_optim=critic_optim)
        cfg = as_config(PPOModuleConfig, {k: _plain(v) for k, v in sections.items() if v is not None}, KEY)
        for key, message in algorithm_problems(cfg, KEY):
            raise ConfigError(key, message)
        self.cfg = cfg
        self.save_hyperparameters({"model": _plain(model), "peft": _plain(peft), "reward_fn": _plain(reward_fn),
                                   **{k: to_dict(getattr(cfg, k)) for k in sections}, "seed": seed,
                                   "log_samples_every_n_steps": log_samples_every_n_steps})
        self.automatic_optimization = False
        self.model_spec = as_config(ModelConfig, _plain(model), f"{KEY}.model")
        self.peft_cfg = as_config(AdapterConfig, _plain(peft), f"{KEY}.peft") if peft else None
        if reward_fn is None:
            raise ConfigError(f"{KEY}.reward_fn", "PPO needs a reward (pick one with reward_fn=word_count|reward_model|crs)")
        self.reward_cfg = _plain(reward_fn)
        self.log_samples_every_n_steps = log_samples_every_n_steps
        self.disable_dropout, self.export_critic, self.seed = disable_dropout, export_critic, seed
        self.tokenizer = load_backbone_tokenizer(self.model_spec)
        kl_cfg = cfg.kl
        self.kl_controller = build_kl_controller(kl_cfg.kind, kl_cfg.init_beta, kl_cfg.target, kl_cfg.horizon)
        self.shaper = ScoreShaper(cfg.score, cfg.rollout, cfg.algorithm)
        self.updates = UpdateLoop(self, cfg.update, cfg.kl, cfg.actor_optim, cfg.critic_optim, seed, cfg.algorithm,
                                  cfg.rollout.max_new_tokens)
        self.ranks = Collectives(self)
        self.actor = self.critic = self.value_head = self.reference = None
        self._reward_fn: list = []  # a plain list, so a reward model is never registered, trained or checkpointed
        self.ptx_stream = self.refill_stream = None
        self._reward_state = self._ptx_state = self._refill_state = None  # from a checkpoint, applied in on_fit_start

    @property
    def uses_value_head(self) -> bool:
        return self.cfg.critic.kind == "value_head"

    @property
    def models(self) -> PolicyModels:
        return PolicyModels(self.actor, self.reference, self.critic, self.value_head, self.cfg.rollout.temperature)

    def configure_model(self) -> None:
        """Built here so FSDP2 shards actor, critic and reference before the optimizers see them."""
        if self.actor is not None:
            return
        base = load_backbone(self.model_spec, self.tokenizer)
        if self.disable_dropout:
            _disable_dropout(base)
        if not (self.peft_cfg and self.peft_cfg.enabled):
            self.reference = copy.deepcopy(base).requires_grad_(False).eval()
        if self.uses_value_head:
            self.value_head = value_head(base.config.hidden_size, base.dtype)
        elif self.cfg.critic.kind != "none":
            self.critic = separate_critic(self.cfg.critic, base, self.seed)
            if self.disable_dropout:
                _disable_dropout(self.critic)
        self.actor = apply_lora(base, self.peft_cfg)
        if self.disable_dropout:
            _disable_dropout(self.actor)
        if self.device_mesh is not None:
            for part in (self.actor, self.critic, self.value_head, self.reference):
                if part is not None:
                    shard_model(part, self.device_mesh, self.model_spec.fsdp_param_dtype)

    def configure_optimizers(self):
        """[actor, critic] optimizers, or the actor's alone when there is no critic."""
        total = int(self.trainer.estimated_stepping_batches)
        actor_opt = build_optimizer(self.actor.parameters(), self.cfg.actor_optim, f"{KEY}.actor_optim")
        optimizers = [actor_opt]
        schedulers = [build_scheduler(actor_opt, self.cfg.actor_optim, total, f"{KEY}.actor_optim")]
        critic = self.value_head if self.uses_value_head else self.critic
        if critic is not None:
            critic_opt = build_optimizer(critic.parameters(), self.cfg.critic_optim, f"{KEY}.critic_optim")
            optimizers.append(critic_opt)
            schedulers.append(build_scheduler(critic_opt, self.cfg.critic_optim, total, f"{KEY}.critic_optim"))
        return optimizers, schedulers

    def on_fit_start(self) -> None:
        warmup, max_steps = self.cfg.update.critic_warmup_steps, self.trainer.max_steps
        if warmup and max_steps is not None and 0 < max_steps <= warmup:
            log.warning("%s.update.critic_warmup_steps=%d >= trainer.max_steps=%d: the actor is never trained in "
                        "this run (only the critic); lower the warm-up for short runs", KEY, warmup, max_steps)
        if self._reward_state is not None:
            self.reward_fn.load_state_dict(self._reward_state)
            self._reward_state = None
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.cfg.update.ptx_coef > 0 and self.ptx_stream is None:
            self.ptx_stream = datamodule.ptx_stream() if datamodule is not None and hasattr(datamodule, "ptx_stream") else None
            if self.ptx_stream is None:
                raise ConfigError(f"{KEY}.update.ptx_coef", "> 0 needs data.ptx.sources (an SFT corpus)")
            if self._ptx_state:
                self.ptx_stream.load_state_dict(self._ptx_state)
        if self.cfg.algorithm.dynamic_sampling and self.refill_stream is None:
            if datamodule is None or getattr(datamodule, "records", None) is None:
                raise ConfigError(f"{KEY}.algorithm.dynamic_sampling", "needs a prompt datamodule to refill from")
            from rlhf.data.prompt_stream import PromptStream

            self.refill_stream = PromptStream(datamodule.records, datamodule.batch_size, self.seed)
            if self._refill_state:
                self.refill_stream.load_state_dict(self._refill_state)

    @property
    def reward_fn(self):
        if not self._reward_fn:
            self._reward_fn.append(build_reward(self.reward_cfg, device=str(self.device), tokenizer=self.tokenizer))
        return self._reward_fn[0]

    def _roll_out(self, batch: dict, iteration: int, seed: int, rollout_cfg=None) -> Rollout:
        cfg = rollout_cfg or self.cfg.rollout
        return roll_out(self.actor, self.tokenizer, batch, iteration, seed, cfg, self.device,
                        fixed_length=self.device_mesh is not None,
                        with_hidden=cfg.logprobs_from_generation and self.uses_value_head)

    def _score(self, rollout: Rollout):
        """The reward's result (rlhf.rewards.weighted_sum.RewardResult: total, parts, details) and
        the total as a float tensor on this device."""
        result = self.reward_fn(rollout.prompts, rollout.texts, rollout.metadata)
        return result, result.scores.float().to(self.device)

    def _rollout_and_scores(self, batch: dict, iteration: int):
        """(rollout, raw scores, the reward's result, counts): dynamic sampling refills groups of equal scores."""
        rollout = self._roll_out(batch, iteration, self.seed)
        result, raw = self._score(rollout)
        algo = self.cfg.algorithm
        if not algo.dynamic_sampling:
            return rollout, raw, result, {}

        results = [result]

        def refill(i: int):
            extra = self._roll_out(self.refill_stream.next_batch(), iteration, self.seed + 7919 * (i + 1))
            extra_result, extra_raw = self._score(extra)
            results.append(extra_result)
            return extra, extra_raw

        rollout, raw, counts, rows = dynamic_sample(rollout, raw, self.cfg.rollout.n_samples_per_prompt,
                                                    algo.max_refills, refill, self.ranks.on_every_rank,
                                                    self.tokenizer.pad_token_id)
        result = type(result).of_rows(results, rows)  # the kept rows' parts and details, for logging
        return rollout, raw, result, {f"dynamic_sampling/{k}": torch.tensor(v) for k, v in counts.items()}

    def _greedy_baseline(self, batch: dict, iteration: int) -> torch.Tensor:
        """ReMax: the shaped score of each prompt's greedy response, repeated over its samples."""
        greedy_cfg = dataclasses.replace(self.cfg.rollout, n_samples_per_prompt=1, top_k=1)
        greedy = self._roll_out(batch, iteration, self.seed, greedy_cfg)
        g = greedy.generation
        shaped = self.shaper(self._score(greedy)[1], g.ended, self.ranks.gather_rows, g.response_mask.sum(1),
                             update_stats=False)
        return shaped.repeat_interleave(self.cfg.rollout.n_samples_per_prompt)

    def training_step(self, batch, batch_idx):
        iteration = self.global_step
        train_actor = iteration >= self.cfg.update.critic_warmup_steps
        models, ranks = self.models, self.ranks
        start = time.perf_counter()
        rollout, raw, reward_result, sampling_stats = self._rollout_and_scores(batch, iteration)
        generation = rollout.generation
        greedy = self._greedy_baseline(batch, iteration) if self.cfg.algorithm.advantage == "remax" else None
        generated = time.perf_counter()
        scores = self.shaper(raw, generation.ended, ranks.gather_rows, generation.response_mask.sum(1))
        scored = time.perf_counter()
        beta = self.kl_controller.beta
        experience, stats = build_experience(models, rollout.query_ids, rollout.query_mask, generation, scores, beta,
                                             self.cfg.rollout, self.cfg.kl, self.cfg.update, ranks,
                                             self.cfg.algorithm, greedy)
        stats.update(sampling_stats)
        stats.update(self.updates.run(models, experience, iteration, train_actor, beta, self.ptx_stream))
        schedulers = self.lr_schedulers()
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
        for scheduler in schedulers[1:]:  # the critic's: it trains from step 0
            scheduler.step()
        if train_actor:
            schedulers[0].step()
        self.kl_controller.update(float(stats["kl_objective"]), int(ranks.sum_all(torch.tensor(raw.numel(), device=self.device))))
        trained = time.perf_counter()
        all_raw, all_scores = ranks.gather_rows(raw), ranks.gather_rows(scores)
        stats.update({
            "reward_raw_mean": all_raw.mean(), "reward_raw_std": all_raw.std(unbiased=False),
            "reward_mean": all_scores.mean(), "reward_std": all_scores.std(unbiased=False),
            "response_length": ranks.gather_rows(generation.response_mask.sum(1).float()).mean(),
            "ended_fraction": ranks.gather_rows(generation.ended.float()).mean(),
            "skipped_updates": torch.tensor(float(self.updates.skipped_updates)),
            "critic_warmup": torch.tensor(float(not train_actor)),
        })
        metrics = {f"train/{k}": v.detach().float().to(self.device) for k, v in stats.items()}
        parts = len(reward_result.parts) > 1 or any(reward_result.details.values())
        if parts:  # one reward without details is train/reward_raw_* already
            metrics.update({k: torch.tensor(v, device=self.device)
                            for k, v in reward_result.metrics(prefix="train/reward").items()})
        for name, seconds in (("generate", generated - start), ("score", scored - generated), ("train", trained - scored)):
            metrics[f"time/{name}"] = torch.tensor(seconds, device=self.device)
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=raw.numel())
        if self.log_samples_every_n_steps and iteration % self.log_samples_every_n_steps == 0:
            log_samples(self.trainer, self.loggers, iteration, rollout.prompts, rollout.texts, raw,
                        reward_result.rows() if parts else None, rollout.metadata)
        # Lightning counts global_step in LightningOptimizer.step() calls; the updates step the raw
        # optimizers, so this gradient-free step counts the iteration (every grad is None here).
        optimizers = self.optimizers()
        (optimizers[-1] if isinstance(optimizers, list) else optimizers).step()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        reward = self._reward_fn[0] if self._reward_fn else None
        state = {"kl_controller": self.kl_controller.state_dict(), "skipped_updates": self.updates.skipped_updates,
                 "score_stats": self.shaper.state_dict(),
                 "reward_fn": reward.state_dict() if hasattr(reward, "state_dict") and not isinstance(reward, nn.Module) else None,
                 "ptx": self.ptx_stream.state_dict() if self.ptx_stream is not None else None,
                 "refill": self.refill_stream.state_dict() if self.refill_stream is not None else None,
                 "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        checkpoint["ppo_state"] = state

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["ppo_state"]
        self.kl_controller.load_state_dict(state["kl_controller"])
        self.updates.skipped_updates = int(state["skipped_updates"])
        self.shaper.load_state_dict(state["score_stats"])
        self._reward_state, self._ptx_state = state.get("reward_fn"), state.get("ptx")
        self._refill_state = state.get("refill")
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def export(self, out_dir) -> str:
        """Actor as HF folders (`merged/`, plus `adapter/` with LoRA), a separate critic in `critic/`
        (unsharded runs only); collective under FSDP2."""
        is_zero = self.trainer.is_global_zero if self._trainer else True
        merged = export_hf(self.actor, self.tokenizer, out_dir, {"stage": "ppo", "base": self.model_spec.source}, is_zero)
        if self.export_critic and self.critic is not None and is_zero and self.device_mesh is None:
            save_pretrained_atomic(self.critic.seq_cls, self.tokenizer, Path(out_dir) / "critic", {"stage": "ppo_critic"})
        return str(merged)


def _plain(value):
    """A section handed over as a dataclass instance or a mapping, as plain data."""
    if value is None or isinstance(value, (dict, list, str, int, float, bool)):
        return value
    if hasattr(value, "__dataclass_fields__"):
        return to_dict(value)
    if OmegaConf.is_config(value):  # the stage is built with _recursive_=False: nodes arrive as configs
        return OmegaConf.to_container(value, resolve=True)
    return dict(value)
