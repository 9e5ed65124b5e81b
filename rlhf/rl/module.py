"""PPOModule: actor, critic, reference and a frozen reward under manual optimisation (docs/methods.md §4).

One training_step is one RL iteration (docs/methods.md §4.8): roll out -> score -> shape -> build the
experience (old/reference log-probs, values, KL-penalised rewards, advantages) -> update `epochs` times
over minibatches -> KL controller. This file only wires the parts: model_setup.py, scored_rollout.py,
shaping.py, experience_builder.py, update.py, step_metrics.py, run_state.py; the formulas live in
losses.py, advantages.py, group_advantages.py, kl_control.py and score_normalization.py;
docs/architecture.md draws it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import torch

from rlhf.core.config import AdapterConfig, ModelConfig
from rlhf.core.errors import ConfigError
from rlhf.core.export import export_hf, save_pretrained_atomic
from rlhf.core.models import load_backbone_tokenizer
from rlhf.core.schema import as_config, plain_data, to_dict
from rlhf.rewards.build import build_reward
from rlhf.rl.collectives import Collectives
from rlhf.rl.config import PPOModuleConfig, algorithm_problems
from rlhf.rl.experience_builder import build_experience
from rlhf.rl.kl_control import build_kl_controller
from rlhf.rl.model_setup import build_optimizers, build_policy_parts
from rlhf.rl.policy import PolicyModels
from rlhf.rl.run_state import RunState
from rlhf.rl.samples import log_samples
from rlhf.rl.scored_rollout import RolloutScorer
from rlhf.rl.shaping import ScoreShaper
from rlhf.rl.step_metrics import step_metrics
from rlhf.rl.update import UpdateLoop

log = logging.getLogger(__name__)
KEY = "stage.module"


class PPOModule(L.LightningModule):
    def __init__(self, model, peft=None, reward_fn=None, algorithm=None, critic=None, rollout=None, score=None,
                 kl=None, update=None, actor_optim=None, critic_optim=None, log_samples_every_n_steps: int = 10,
                 disable_dropout: bool = True, export_critic: bool = True, seed: int = 0):
        super().__init__()
        sections = dict(algorithm=algorithm, critic=critic, rollout=rollout, score=score, kl=kl, update=update,
                        actor_optim=actor_optim, critic_optim=critic_optim)
        cfg = as_config(PPOModuleConfig, {k: plain_data(v) for k, v in sections.items() if v is not None}, KEY)
        for key, message in algorithm_problems(cfg, KEY):
            raise ConfigError(key, message)
        if reward_fn is None:
            raise ConfigError(f"{KEY}.reward_fn", "PPO needs a reward (pick one with reward_fn=word_count|reward_model|crs)")
        self.cfg = cfg
        self.save_hyperparameters({"model": plain_data(model), "peft": plain_data(peft), "reward_fn": plain_data(reward_fn),
                                   **{k: to_dict(getattr(cfg, k)) for k in sections}, "seed": seed,
                                   "log_samples_every_n_steps": log_samples_every_n_steps})
        self.automatic_optimization = False
        self.model_spec = as_config(ModelConfig, plain_data(model), f"{KEY}.model")
        self.peft_cfg = as_config(AdapterConfig, plain_data(peft), f"{KEY}.peft") if peft else None
        self.reward_cfg = plain_data(reward_fn)
        self.log_samples_every_n_steps = log_samples_every_n_steps
        self.disable_dropout, self.export_critic, self.seed = disable_dropout, export_critic, seed
        self.tokenizer = load_backbone_tokenizer(self.model_spec)
        self.kl_controller = build_kl_controller(cfg.kl.kind, cfg.kl.init_beta, cfg.kl.target, cfg.kl.horizon)
        self.shaper = ScoreShaper(cfg.score, cfg.rollout, cfg.algorithm)
        self.updates = UpdateLoop(self, cfg.update, cfg.kl, cfg.actor_optim, cfg.critic_optim, seed, cfg.algorithm,
                                  cfg.rollout.max_new_tokens)
        self.ranks = Collectives(self)
        self.scorer = RolloutScorer(self)
        self.run_state = RunState(self, KEY)
        self.actor = self.critic = self.value_head = self.reference = None
        self._reward_fn: list = []  # a plain list, so a reward model is never registered, trained or checkpointed

    @property
    def uses_value_head(self) -> bool:
        return self.cfg.critic.kind == "value_head"

    @property
    def models(self) -> PolicyModels:
        shared = self.cfg.update.shared_prompt and self.cfg.rollout.n_samples_per_prompt > 1
        return PolicyModels(self.actor, self.reference, self.critic, self.value_head, self.cfg.rollout.temperature,
                            shared_prompt=shared, pad_token_id=self.tokenizer.pad_token_id)

    @property
    def reward_fn(self):
        if not self._reward_fn:
            self._reward_fn.append(build_reward(self.reward_cfg, device=str(self.device), tokenizer=self.tokenizer))
        return self._reward_fn[0]

    @property
    def built_reward(self):
        """The reward if it has been built, else None (checkpointing must not build it)."""
        return self._reward_fn[0] if self._reward_fn else None

    @property
    def ptx_stream(self):
        return self.run_state.ptx_stream

    @property
    def refill_stream(self):
        return self.run_state.refill_stream

    def configure_model(self) -> None:
        """Built here so FSDP2 shards actor, critic and reference before the optimizers see them."""
        if self.actor is None:
            parts = build_policy_parts(self.model_spec, self.tokenizer, self.peft_cfg, self.cfg.critic,
                                       self.disable_dropout, self.seed, self.device_mesh)
            self.reference, self.critic, self.value_head = parts["reference"], parts["critic"], parts["value_head"]
            self.actor = parts["actor"]

    def configure_optimizers(self):
        critic = self.value_head if self.uses_value_head else self.critic
        return build_optimizers(self.actor, critic, self.cfg, int(self.trainer.estimated_stepping_batches), KEY)

    def on_fit_start(self) -> None:
        warmup, max_steps = self.cfg.update.critic_warmup_steps, self.trainer.max_steps
        if warmup and max_steps is not None and 0 < max_steps <= warmup:
            log.warning("%s.update.critic_warmup_steps=%d >= trainer.max_steps=%d: the actor is never trained in "
                        "this run (only the critic); lower the warm-up for short runs", KEY, warmup, max_steps)
        self.run_state.open_streams(getattr(self.trainer, "datamodule", None))

    def training_step(self, batch, batch_idx):
        iteration = self.global_step
        train_actor = iteration >= self.cfg.update.critic_warmup_steps
        models, ranks = self.models, self.ranks
        start = time.perf_counter()
        rollout, raw, reward_result, sampling_stats = self.scorer(batch, iteration)
        generation = rollout.generation
        greedy = self.scorer.greedy_baseline(batch, iteration) if self.cfg.algorithm.advantage == "remax" else None
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
        seconds = {"generate": generated - start, "score": scored - generated, "train": time.perf_counter() - scored}
        metrics, parts = step_metrics(stats, raw, scores, generation, ranks, self.updates.skipped_updates, train_actor,
                                      reward_result, seconds, self.device)
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=raw.numel())
        if self.log_samples_every_n_steps and iteration % self.log_samples_every_n_steps == 0:
            log_samples(self.trainer, self.loggers, iteration, rollout.prompts, rollout.texts, raw,
                        reward_result.rows() if parts else None, rollout.metadata)
        # Lightning counts global_step in LightningOptimizer.step() calls; the updates step the raw
        # optimizers, so this gradient-free step counts the iteration (every grad is None here).
        optimizers = self.optimizers()
        (optimizers[-1] if isinstance(optimizers, list) else optimizers).step()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self.run_state.save(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.run_state.load(checkpoint)

    def export(self, out_dir) -> str:
        """Actor as HF folders (`merged/`, plus `adapter/` with LoRA), a separate critic in `critic/`
        (unsharded runs only); collective under FSDP2."""
        is_zero = self.trainer.is_global_zero if self._trainer else True
        merged = export_hf(self.actor, self.tokenizer, out_dir, {"stage": "ppo", "base": self.model_spec.source}, is_zero)
        if self.export_critic and self.critic is not None and is_zero and self.device_mesh is None:
            save_pretrained_atomic(self.critic.seq_cls, self.tokenizer, Path(out_dir) / "critic", {"stage": "ppo_critic"})
        return str(merged)
