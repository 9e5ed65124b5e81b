"""PPOModule: actor, critic, reference and frozen rewards under manual optimisation (METHODS §4).

One training_step is one PPO iteration (METHODS §4.8): generate → score → old/reference log-probs
and values → KL-penalised rewards → GAE → whitening → `epochs` × minibatch updates → KL
controller. Every formula lives in rlhf/losses.py, rlhf/advantages.py, rlhf/kl_control.py and
rlhf/reward_normalization.py; this file only wires them.

Distributed runs compute every statistic over all ranks (token-weighted means, whitening and
running reward stats on the gathered batch) and weight each rank's loss by its share of the
global tokens, so W processes with batch B give the same numbers as one process with batch W·B.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy
from torch import nn

from rlhf.core.errors import TrainingFault
from rlhf.rl.advantages import explained_variance, gae_advantages, kl_penalized_rewards, sequence_kl, whiten
from rlhf.core.errors import ConfigError
from rlhf.core.gradients import grads_are_finite
from rlhf.rl.experience import Experience, length_sorted_micro_batches
from rlhf.core.export import export_hf, save_pretrained_atomic
from rlhf.rl.kl_control import build_kl_controller
from rlhf.core.lora import apply_lora
from rlhf.core.token_losses import entropy_from_logits, masked_lm_loss, masked_mean
from rlhf.rl.losses import clipped_policy_loss, clipped_value_loss, kl_penalty_loss
from rlhf.core.models import load_backbone, load_backbone_tokenizer
from rlhf.core.optim import build_optimizer, build_scheduler
from rlhf.rl.score_normalization import RunningMeanStd, clip_scores
from rlhf.rewards.build import build_reward
from rlhf.rl.rollout import forward_response, generate, left_pad, position_ids, sample_seeds
from rlhf.core.sharding import shard_model

log = logging.getLogger(__name__)

CRITIC_KINDS = ("separate", "value_head")
KL_PLACEMENTS = ("reward", "loss")


class ValueModel(nn.Module):
    """A separate critic: an HF *ForSequenceClassification body with its scalar head read at every
    token (METHODS §4.1: SFT or RM backbone + scalar value head); saves as a loadable HF folder."""

    def __init__(self, seq_cls):
        super().__init__()
        self.seq_cls = seq_cls

    def forward(self, input_ids, attention_mask, position_ids):
        hidden = self.seq_cls.base_model(input_ids=input_ids, attention_mask=attention_mask,
                                         position_ids=position_ids, use_cache=False).last_hidden_state
        return self.seq_cls.score(hidden).squeeze(-1).float()


def _disable_dropout(model: nn.Module) -> None:
    """p = 0 everywhere: with dropout on, the training forward would not reproduce the rollout's
    log-probs and KL(π‖π_ref) would not be 0 at step 0 (METHODS §4.10)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


def _freeze(model: nn.Module) -> nn.Module:
    model.requires_grad_(False)
    return model.eval()


def _critic_from_spec(cfg: dict, actor_base: nn.Module, seed: int) -> ValueModel:
    """Critic init: `path` = an RM folder (keeps its head) or an SFT/causal-LM folder (new head),
    or no path = the actor's own backbone weights with a new head. New heads start at 0 so V = 0."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    path = cfg.get("path")
    new_head = True
    if path:
        from rlhf.reward_model.scoring import resolve_model_dir

        folder = resolve_model_dir(path)
        config = AutoConfig.from_pretrained(folder)
        new_head = not any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
        seq_cls = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, use_safetensors=True,
                                                                     dtype=actor_base.dtype)
    else:
        config = copy.deepcopy(actor_base.config)
        config.num_labels = 1
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            seq_cls = AutoModelForSequenceClassification.from_config(config, dtype=actor_base.dtype)
        seq_cls.base_model.load_state_dict(actor_base.base_model.state_dict())
    if new_head:
        nn.init.zeros_(seq_cls.score.weight)
        if seq_cls.score.bias is not None:
            nn.init.zeros_(seq_cls.score.bias)
    seq_cls.config.pad_token_id = actor_base.config.pad_token_id
    return ValueModel(seq_cls)


class PPOModule(L.LightningModule):
    def __init__(self, model: dict, peft: dict | None = None, reward: dict | list | None = None,
                 critic: dict | None = None, rollout: dict | None = None, score: dict | None = None,
                 kl: dict | None = None, ppo: dict | None = None, actor_optim: dict | None = None,
                 critic_optim: dict | None = None, log_samples_every_n_steps: int = 10, disable_dropout: bool = True,
                 export_critic: bool = True, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.model_spec = dict(model)
        self.peft_cfg = dict(peft) if peft else None
        self.reward_cfg = reward
        self.critic_cfg = dict(critic or {"kind": "separate"})
        self.rollout_cfg = dict(rollout or {})
        self.score_cfg = dict(score or {})
        self.kl_cfg = dict(kl or {})
        self.ppo_cfg = dict(ppo or {})
        self.actor_optim_cfg = dict(actor_optim or {})
        self.critic_optim_cfg = dict(critic_optim or {})
        self.log_samples_every_n_steps = log_samples_every_n_steps
        self.disable_dropout = disable_dropout
        self.export_critic = export_critic
        self.seed = seed
        if self.critic_cfg.get("kind", "separate") not in CRITIC_KINDS:
            raise ConfigError("stage.module.critic.kind", f"got {self.critic_cfg.get('kind')!r}; allowed: {CRITIC_KINDS}")
        if self.kl_cfg.get("placement", "reward") not in KL_PLACEMENTS:
            raise ConfigError("stage.module.kl.placement", f"got {self.kl_cfg.get('placement')!r}; allowed: {KL_PLACEMENTS}")
        if reward is None:
            raise ConfigError("stage.module.reward", "PPO needs a reward (pick one with reward=word_count|reward_model|crs)")
        self.tokenizer = load_backbone_tokenizer(self.model_spec)
        self.kl_controller = build_kl_controller(self.kl_cfg.get("kind", "adaptive"), float(self.kl_cfg.get("init_beta", 0.002)),
                                                 self.kl_cfg.get("target"), self.kl_cfg.get("horizon"))
        self.score_stats = RunningMeanStd() if self.score_cfg.get("normalize", False) else None
        self.actor = self.critic = self.value_head = self.reference = None
        self._reward_fn: list = []  # a plain list, so a reward model is never registered, trained or checkpointed
        self.ptx_stream = None
        self.skipped_updates = 0
        self.nonfinite_in_a_row = 0
        self._reward_state = self._ptx_state = None  # restored from a checkpoint, applied in on_fit_start

    # ----------------------------------------------------------------------------------- build
    @property
    def uses_value_head(self) -> bool:
        return self.critic_cfg.get("kind", "separate") == "value_head"

    def configure_model(self) -> None:
        """Built here so FSDP2 shards actor, critic and reference before the optimizers see them."""
        if self.actor is not None:
            return
        base = load_backbone(self.model_spec, self.tokenizer)
        if self.disable_dropout:
            _disable_dropout(base)
        lora = bool(self.peft_cfg and self.peft_cfg.get("enabled", True))
        if not lora:
            self.reference = _freeze(copy.deepcopy(base))
        if self.uses_value_head:
            self.value_head = nn.Linear(base.config.hidden_size, 1, dtype=base.dtype)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
        else:
            self.critic = _critic_from_spec(self.critic_cfg, base, self.seed)
            if self.disable_dropout:
                _disable_dropout(self.critic)
        self.actor = apply_lora(base, self.peft_cfg)
        if self.disable_dropout:
            _disable_dropout(self.actor)
        if self.device_mesh is not None:
            dtype = self.model_spec.get("fsdp_param_dtype")
            for part in (self.actor, self.critic, self.value_head, self.reference):
                if part is not None:
                    shard_model(part, self.device_mesh, dtype)

    def configure_optimizers(self):
        total = int(self.trainer.estimated_stepping_batches)
        critic_params = self.value_head.parameters() if self.uses_value_head else self.critic.parameters()
        actor_opt = build_optimizer(self.actor.parameters(), self.actor_optim_cfg, "stage.module.actor_optim")
        critic_opt = build_optimizer(critic_params, self.critic_optim_cfg, "stage.module.critic_optim")
        return ([actor_opt, critic_opt],
                [build_scheduler(actor_opt, self.actor_optim_cfg, total, "stage.module.actor_optim"),
                 build_scheduler(critic_opt, self.critic_optim_cfg, total, "stage.module.critic_optim")])

    def on_fit_start(self) -> None:
        warmup, max_steps = int(self.ppo_cfg.get("critic_warmup_steps", 0)), self.trainer.max_steps
        if warmup and max_steps is not None and 0 < max_steps <= warmup:
            log.warning("stage.module.ppo.critic_warmup_steps=%d >= trainer.max_steps=%d: the actor is never trained in "
                        "this run (only the critic); lower the warm-up for short runs", warmup, max_steps)
        if self._reward_state is not None:
            self.reward_fn.load_state_dict(self._reward_state)
            self._reward_state = None
        datamodule = getattr(self.trainer, "datamodule", None)
        if float(self.ppo_cfg.get("ptx_coef", 0.0)) > 0 and self.ptx_stream is None:
            self.ptx_stream = datamodule.ptx_stream() if datamodule is not None and hasattr(datamodule, "ptx_stream") else None
            if self.ptx_stream is None:
                raise ConfigError("stage.module.ppo.ptx_coef", "> 0 needs data.ptx.sources (an SFT corpus)")
            if self._ptx_state:
                self.ptx_stream.load_state_dict(self._ptx_state)

    @property
    def reward_fn(self):
        if not self._reward_fn:
            self._reward_fn.append(build_reward(self.reward_cfg, device=str(self.device)))
        return self._reward_fn[0]

    # ----------------------------------------------------------------------------- distributed
    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    def _sum_all(self, x: torch.Tensor) -> torch.Tensor:
        if self.world_size == 1:
            return x
        return self.trainer.strategy.reduce(x.clone(), reduce_op="sum")

    def _gather_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of every rank stacked [W·B, ...], trailing axis padded to the widest rank."""
        if self.world_size == 1:
            return x
        if x.dim() == 2:
            width = int(self.trainer.strategy.reduce(torch.tensor(x.size(1), device=x.device), reduce_op="max"))
            x = nn.functional.pad(x, (0, width - x.size(1)))
        gathered = self.all_gather(x)
        return gathered.reshape(-1, *gathered.shape[2:])

    def _local_rows(self, gathered: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if self.world_size == 1:
            return gathered
        start = self.global_rank * like.size(0)
        return gathered[start:start + like.size(0), :like.size(1)]

    def _global_means(self, stats: dict[str, torch.Tensor], weight: torch.Tensor) -> dict[str, torch.Tensor]:
        """Σ_ranks w·stat / Σ_ranks w for each local mean `stat` with weight w (token count)."""
        names = list(stats)
        packed = torch.stack([stats[n].detach().float() * weight for n in names] + [weight.float()])
        packed = self._sum_all(packed)
        return {n: packed[i] / packed[-1].clamp_min(1) for i, n in enumerate(names)}

    # ---------------------------------------------------------------------------------- rollout
    def _rollout(self, batch: dict, iteration: int):
        n = int(self.rollout_cfg.get("n_samples_per_prompt", 1))
        prompts = [p for p in batch["prompts"] for _ in range(n)]
        query_ids, query_mask = left_pad([ids for ids in batch["input_ids"] for _ in range(n)], self.tokenizer.pad_token_id)
        seeds = sample_seeds(self.seed, iteration, batch["ids"], n)
        query_ids, query_mask, seeds = query_ids.to(self.device), query_mask.to(self.device), seeds.to(self.device)
        generation = generate(
            self.actor, query_ids, query_mask, seeds, eos_id=self.tokenizer.eos_token_id,
            pad_id=self.tokenizer.pad_token_id, max_new_tokens=int(self.rollout_cfg.get("max_new_tokens", 512)),
            temperature=self.temperature, top_k=int(self.rollout_cfg.get("top_k", 0)),
            top_p=float(self.rollout_cfg.get("top_p", 1.0)), fixed_length=self.device_mesh is not None,
            with_hidden=self.reuses_generation and self.uses_value_head)
        return prompts, query_ids, query_mask, generation

    @property
    def reuses_generation(self) -> bool:
        """Old log-probs, entropy and value-head states taken from the sampling forwards instead of
        a second forward over prompt + response (≈ 9 % of a step; off = recompute, exact to the bit)."""
        return bool(self.rollout_cfg.get("logprobs_from_generation", True))

    @property
    def temperature(self) -> float:
        return float(self.rollout_cfg.get("temperature", 1.0))

    def _response_texts(self, response_ids: torch.Tensor, mask: torch.Tensor, ended: torch.Tensor) -> list[str]:
        lengths = (mask.sum(1) - ended.long()).tolist()  # drop the EOS itself
        rows = response_ids.tolist()
        return [self.tokenizer.decode(row[:n], skip_special_tokens=True) for row, n in zip(rows, lengths)]

    def _scores(self, raw: torch.Tensor, ended: torch.Tensor) -> torch.Tensor:
        """Sequence score after the never-ended penalty, running normalisation over all ranks, then
        clipping (METHODS §4.3 steps 3–4: Qwen running mean, thesis clip ±4)."""
        penalty = self.rollout_cfg.get("unfinished_penalty")
        scores = raw - float(penalty) * (~ended).float() if penalty else raw
        if self.score_stats is not None:
            self.score_stats.update(self._gather_rows(scores))
            scores = self.score_stats.normalize(scores, subtract_mean=True,
                                                divide_std=bool(self.score_cfg.get("divide_std", False)))
        return clip_scores(scores, self.score_cfg.get("clip"))

    def _values(self, query_ids, query_mask, response_ids, response_mask, hidden) -> torch.Tensor:
        if self.uses_value_head:
            return self.value_head(hidden).squeeze(-1).float()
        input_ids = torch.cat([query_ids, response_ids], dim=1)
        attention = torch.cat([query_mask, response_mask], dim=1).long()
        values = self.critic(input_ids, attention, position_ids(attention))
        n = response_ids.size(1)
        return values[:, -n - 1:-1]

    def _reference_logprobs(self, query_ids, query_mask, response_ids, response_mask) -> torch.Tensor:
        if self.reference is None:
            with self.actor.disable_adapter():
                return forward_response(self.actor, query_ids, query_mask, response_ids, response_mask, self.temperature)[0]
        return forward_response(self.reference, query_ids, query_mask, response_ids, response_mask, self.temperature)[0]

    @torch.no_grad()
    def _experience(self, query_ids, query_mask, generation, scores) -> tuple[Experience, dict]:
        ids, mask = generation.response_ids, generation.response_mask
        if self.reuses_generation:
            old_logprobs, entropy, hidden = generation.logprobs, generation.entropy, generation.hidden
        else:
            old_logprobs, logits, hidden = forward_response(self.actor, query_ids, query_mask, ids, mask,
                                                            self.temperature, with_hidden=self.uses_value_head)
            entropy = entropy_from_logits(logits)
            del logits
        old_values = self._values(query_ids, query_mask, ids, mask, hidden)
        ref_logprobs = self._reference_logprobs(query_ids, query_mask, ids, mask)
        beta = self.kl_controller.beta if self.kl_cfg.get("placement", "reward") == "reward" else 0.0
        estimator = self.kl_cfg.get("estimator", "k1")
        rewards, kl = kl_penalized_rewards(scores, old_logprobs, ref_logprobs, mask, beta, estimator)
        gamma, lam = float(self.ppo_cfg.get("gamma", 1.0)), float(self.ppo_cfg.get("lam", 0.95))
        advantages, returns = gae_advantages(rewards, old_values, mask, gamma, lam)
        all_mask = self._gather_rows(mask)
        all_adv = self._gather_rows(advantages)
        adv_mean = masked_mean(all_adv, all_mask)
        adv_std = masked_mean((all_adv - adv_mean) ** 2, all_mask).sqrt()
        if self.ppo_cfg.get("whiten_advantages", True):
            advantages = self._local_rows(whiten(all_adv, all_mask), advantages)
        n_tokens = mask.sum().float()
        token_stats = self._global_means({
            "kl_per_token": masked_mean(kl, mask), "entropy": masked_mean(entropy, mask),
            "values_mean": masked_mean(old_values, mask), "returns_mean": masked_mean(returns, mask),
        }, n_tokens)
        objective_kl = self._gather_rows(sequence_kl(kl, mask)).mean()
        stats = {**token_stats, "kl_objective": objective_kl, "advantage_mean": adv_mean, "advantage_std": adv_std,
                 "explained_variance": explained_variance(self._gather_rows(old_values), self._gather_rows(returns), all_mask),
                 "beta": torch.tensor(self.kl_controller.beta)}
        experience = Experience(query_ids, query_mask, ids, mask, old_logprobs, ref_logprobs, old_values, advantages,
                                returns, rewards)
        return experience, stats

    # ---------------------------------------------------------------------------------- updates
    def _minibatch_losses(self, mb: Experience, train_actor: bool, total_tokens: torch.Tensor
                          ) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """(loss, detached stats, local token count) of one micro-batch; the loss is weighted by its
        share of the minibatch's tokens over all ranks, so the gradients accumulated over micro-batches
        and averaged over ranks equal the one-process, one-forward gradient of the minibatch."""
        mask = mb.response_mask
        n_local = mask.sum().float()
        scale = n_local * self.world_size / total_tokens
        stats = {}
        need_actor = train_actor or self.uses_value_head
        hidden = None
        actor_loss = torch.zeros((), device=self.device)
        if need_actor:
            logprobs, logits, hidden = forward_response(self.actor, mb.query_ids, mb.query_mask, mb.response_ids, mask,
                                                        self.temperature, with_hidden=self.uses_value_head)
            pg_loss, pg_stats = clipped_policy_loss(logprobs, mb.old_logprobs, mb.advantages, mask,
                                                    float(self.ppo_cfg.get("clip_eps", 0.2)))
            actor_loss = pg_loss
            entropy_coef = float(self.ppo_cfg.get("entropy_coef", 0.0))
            if entropy_coef > 0:  # a [B, R, V] softmax (≈ 3 % of a CPU step): only when the bonus is on;
                entropy = masked_mean(entropy_from_logits(logits), mask)  # the rollout's entropy is logged anyway
                actor_loss = actor_loss - entropy_coef * entropy
                stats["train_entropy"] = entropy
            if self.kl_cfg.get("placement", "reward") == "loss":
                actor_loss = actor_loss + self.kl_controller.beta * kl_penalty_loss(
                    logprobs, mb.ref_logprobs, mask, self.kl_cfg.get("estimator", "k3"))
            stats.update(policy_loss=pg_loss, policy_clipfrac=pg_stats["clipfrac"], approx_kl=pg_stats["approx_kl"],
                         ratio_mean=pg_stats["ratio_mean"])
            actor_loss = actor_loss * scale * (1.0 if train_actor else 0.0)
        values = self._values(mb.query_ids, mb.query_mask, mb.response_ids, mask, hidden)
        value_loss, v_stats = clipped_value_loss(values, mb.old_values, mb.returns, mask,
                                                 float(self.ppo_cfg.get("clip_value", 0.2)))
        stats.update(value_loss=value_loss, value_clipfrac=v_stats["value_clipfrac"])
        vf_coef = float(self.ppo_cfg.get("vf_coef", 0.1)) if self.uses_value_head else 1.0
        total = actor_loss + vf_coef * value_loss * scale
        return total, {k: v.detach() for k, v in stats.items()}, n_local

    def _ptx_loss(self) -> torch.Tensor:
        """Pretraining LM loss on the next PTX batch (Qwen, METHODS §4.9): one batch per minibatch."""
        ptx = {k: v.to(self.device) for k, v in self.ptx_stream.next_batch().items()}
        logits = self.actor(input_ids=ptx["input_ids"], attention_mask=ptx["attention_mask"],
                            position_ids=position_ids(ptx["attention_mask"]), use_cache=False).logits
        return masked_lm_loss(logits, ptx["labels"])

    @property
    def _syncs_ddp_by_hand(self) -> bool:
        """DDP gradient averaging is done here, once per minibatch (one flat all-reduce): DDP's
        reducer wants a gradient for every trainable parameter in every backward, which a
        critic-only warm-up step does not give the actor. FSDP2 reduce-scatters by itself."""
        return isinstance(self.trainer.strategy, DDPStrategy) and self.world_size > 1

    def _backward_if_finite(self, loss: torch.Tensor) -> bool:
        """manual_backward (without DDP's own sync) unless the loss is NaN/inf on any rank; all ranks
        agree, so they all skip together and FSDP2's collectives stay in step."""
        if not self._on_every_rank(bool(torch.isfinite(loss.detach()).all())):
            return False
        if not self._syncs_ddp_by_hand:
            self.manual_backward(loss)
            return True
        with self.trainer.model.no_sync():
            self.manual_backward(loss)
        return True

    def _sync_gradients(self) -> None:
        if not self._syncs_ddp_by_hand:
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        flat = torch._utils._flatten_dense_tensors(grads)
        torch.distributed.all_reduce(flat)
        flat /= self.world_size
        for grad, synced in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
            grad.copy_(synced)

    def _accumulate(self, mb: Experience, train_actor: bool) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """Forward + backward of one minibatch as length-sorted micro-batches (`ppo.micro_batch_size`;
        default: one, trimmed of padding), then the PTX term; (summed loss, token-weighted stats,
        local tokens). A term that is NaN/inf on any rank stops the minibatch with a non-finite
        loss on every rank, so the caller drops the update."""
        n_local = mb.response_mask.sum().float()
        total_tokens = self._sum_all(n_local).clamp_min(1)
        sums: dict[str, torch.Tensor] = {}
        loss_sum = torch.zeros((), device=self.device)
        for part in length_sorted_micro_batches(mb, self.ppo_cfg.get("micro_batch_size")):
            loss, stats, n_part = self._minibatch_losses(part, train_actor, total_tokens)
            loss_sum = loss_sum + loss.detach()
            if not self._backward_if_finite(loss):
                return self._non_finite(loss_sum), {}, n_local
            for name, value in stats.items():
                sums[name] = sums.get(name, 0.0) + value * n_part
        stats = {name: total / n_local.clamp_min(1) for name, total in sums.items()}
        ptx_coef = float(self.ppo_cfg.get("ptx_coef", 0.0))
        if train_actor and ptx_coef > 0:  # one PTX batch per minibatch, however it is cut
            ptx_loss = self._ptx_loss()
            loss_sum = loss_sum + ptx_coef * ptx_loss.detach()
            if not self._backward_if_finite(ptx_coef * ptx_loss):
                return self._non_finite(loss_sum), {}, n_local
            stats["ptx_loss"] = ptx_loss.detach()
        self._sync_gradients()
        return loss_sum, stats, n_local

    @staticmethod
    def _non_finite(loss_sum: torch.Tensor) -> torch.Tensor:
        """The summed loss, made NaN when only another rank's term was bad, so every rank skips."""
        return loss_sum if not bool(torch.isfinite(loss_sum)) else torch.full_like(loss_sum, float("nan"))

    def _updates(self, experience: Experience, iteration: int, train_actor: bool) -> dict:
        actor_opt, critic_opt = (o.optimizer for o in self.optimizers())
        rows = experience.n_rows
        size = int(self.ppo_cfg.get("minibatch_size") or rows)
        stop_kl = self.ppo_cfg.get("early_stop_kl")
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + iteration)
        history: dict[str, list] = {}
        updates, stopped = 0, False
        for _ in range(int(self.ppo_cfg.get("epochs", 4))):
            order = torch.randperm(rows, generator=generator).to(self.device)
            for start in range(0, rows, size):
                loss, stats, n_local = self._accumulate(experience.rows(order[start:start + size]), train_actor)
                if not bool(torch.isfinite(loss)):  # every rank agreed in _accumulate
                    self._zero_grads(actor_opt, critic_opt)
                    self._skip_update(iteration, f"loss {float(loss)}")
                    continue
                stats = self._global_means(stats, n_local)
                if stop_kl is not None and train_actor and float(stats["approx_kl"]) > float(stop_kl):
                    self._zero_grads(actor_opt, critic_opt)
                    stopped = True
                    break
                if not self._on_every_rank(grads_are_finite(actor_opt) and grads_are_finite(critic_opt)):
                    self._zero_grads(actor_opt, critic_opt)
                    self._skip_update(iteration, "a NaN/inf gradient")
                    continue
                self.nonfinite_in_a_row = 0
                stats["critic_grad_norm"] = self._step(critic_opt, self.critic_optim_cfg)
                if train_actor:
                    stats["actor_grad_norm"] = self._step(actor_opt, self.actor_optim_cfg)
                actor_opt.zero_grad(set_to_none=True)
                updates += 1
                for name, value in stats.items():
                    history.setdefault(name, []).append(value)
            if stopped:
                break
        out = {name: torch.stack(values).mean() for name, values in history.items()}
        out["ppo_updates"] = torch.tensor(float(updates))
        out["early_stopped"] = torch.tensor(float(stopped))
        return out

    @staticmethod
    def _zero_grads(*optimizers) -> None:
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)

    def _on_every_rank(self, ok: bool) -> bool:
        """True only when `ok` holds on every rank, so all ranks skip (or step) together."""
        return float(self._sum_all(torch.tensor([float(ok)], device=self.device))) == self.world_size

    def _skip_update(self, iteration: int, what: str) -> None:
        """A minibatch with a NaN/inf loss or gradient changes no weight; too many in a row end the run
        (the optimizers are stepped here directly, so the NonFiniteGuard callback does not see them)."""
        self.skipped_updates += 1
        self.nonfinite_in_a_row += 1
        log.warning("PPO step %d: %s -> minibatch update skipped (%d in a row, %d in total)",
                    iteration, what, self.nonfinite_in_a_row, self.skipped_updates)
        limit = int(self.ppo_cfg.get("max_nonfinite_in_a_row", 5))
        if self.nonfinite_in_a_row >= limit:
            raise TrainingFault(
                f"step {iteration}: {self.nonfinite_in_a_row} PPO minibatch updates in a row had a NaN/inf loss or "
                f"gradient (last: {what}). Likely causes: learning rate too high, bf16/fp16 overflow, a reward "
                f"model returning NaN, or advantages whitened over a batch with zero variance.")

    def _step(self, optimizer, cfg: dict) -> torch.Tensor:
        """Clip (per optimizer) and step; returns the gradient norm before clipping."""
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        clip = cfg.get("grad_clip")
        if clip:
            self.clip_gradients(optimizer, gradient_clip_val=float(clip), gradient_clip_algorithm="norm")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return norm.detach()

    def _count_iteration(self) -> None:
        """Lightning counts global_step in LightningOptimizer.step() calls; the updates above use the
        raw optimizers, and this gradient-free step counts the whole PPO iteration as one step
        (every grad is None here, so AdamW changes nothing)."""
        self.optimizers()[1].step()

    # ------------------------------------------------------------------------------- main loop
    def training_step(self, batch, batch_idx):
        iteration = self.global_step
        train_actor = iteration >= int(self.ppo_cfg.get("critic_warmup_steps", 0))
        start = time.perf_counter()
        prompts, query_ids, query_mask, generation = self._rollout(batch, iteration)
        generated = time.perf_counter()
        texts = self._response_texts(generation.response_ids, generation.response_mask, generation.ended)
        raw = self.reward_fn.score(prompts, texts).float().to(self.device)
        scores = self._scores(raw, generation.ended)
        scored = time.perf_counter()
        experience, stats = self._experience(query_ids, query_mask, generation, scores)
        stats.update(self._updates(experience, iteration, train_actor))
        actor_sched, critic_sched = self.lr_schedulers()
        critic_sched.step()
        if train_actor:
            actor_sched.step()
        self.kl_controller.update(float(stats["kl_objective"]), int(self._sum_all(torch.tensor(raw.numel(), device=self.device))))
        trained = time.perf_counter()
        all_raw, all_scores = self._gather_rows(raw), self._gather_rows(scores)
        lengths = self._gather_rows(generation.response_mask.sum(1).float())
        stats.update({
            "reward_raw_mean": all_raw.mean(), "reward_raw_std": all_raw.std(unbiased=False),
            "reward_mean": all_scores.mean(), "reward_std": all_scores.std(unbiased=False),
            "response_length": lengths.mean(), "ended_fraction": self._gather_rows(generation.ended.float()).mean(),
            "skipped_updates": torch.tensor(float(self.skipped_updates)), "critic_warmup": torch.tensor(float(not train_actor)),
        })
        metrics = {f"train/{k}": v.detach().float().to(self.device) for k, v in stats.items()}
        for name, seconds in (("generate", generated - start), ("score", scored - generated), ("train", trained - scored)):
            metrics[f"time/{name}"] = torch.tensor(seconds, device=self.device)
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=raw.numel())
        if self.log_samples_every_n_steps and iteration % self.log_samples_every_n_steps == 0:
            self._log_samples(iteration, prompts, texts, raw)
        self._count_iteration()

    # ----------------------------------------------------------------------------------- samples
    def _log_samples(self, iteration: int, prompts, texts, raw) -> None:
        """Sample table (prompt, response, reward): JSONL in the run dir always, and to any logger
        that can show a table (wandb)."""
        if not self.trainer.is_global_zero:
            return
        rows = [[prompt[-1]["content"], text, float(r)] for prompt, text, r in zip(prompts, texts, raw.tolist())]
        path = Path(self.trainer.default_root_dir) / "samples.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            for prompt, response, reward in rows:
                handle.write(json.dumps({"step": iteration, "prompt": prompt, "response": response, "reward": reward}) + "\n")
        for logger in self.loggers:
            if hasattr(logger, "log_table"):
                logger.log_table(key="samples", columns=["prompt", "response", "reward"], data=rows, step=iteration)

    # ------------------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        state = {"kl_controller": self.kl_controller.state_dict(), "skipped_updates": self.skipped_updates,
                 "score_stats": self.score_stats.state_dict() if self.score_stats is not None else None,
                 "reward_fn": self._reward_fn[0].state_dict() if self._reward_fn and hasattr(self._reward_fn[0], "state_dict")
                 and not isinstance(self._reward_fn[0], nn.Module) else None,
                 "ptx": self.ptx_stream.state_dict() if self.ptx_stream is not None else None,
                 "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        checkpoint["ppo_state"] = state

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["ppo_state"]
        self.kl_controller.load_state_dict(state["kl_controller"])
        self.skipped_updates = int(state["skipped_updates"])
        if self.score_stats is not None and state["score_stats"] is not None:
            self.score_stats.load_state_dict(state["score_stats"])
        self._reward_state = state.get("reward_fn")
        self._ptx_state = state.get("ptx")
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    # ---------------------------------------------------------------------------------- export
    def export(self, out_dir) -> str:
        """Actor as HF folders (`merged/`, plus `adapter/` with LoRA), critic in `critic/`
        (a separate critic only, unsharded runs only); collective under FSDP2."""
        is_zero = self.trainer.is_global_zero if self._trainer else True
        merged = export_hf(self.actor, self.tokenizer, out_dir, {"stage": "ppo", "base": self.model_spec["source"]}, is_zero)
        if self.export_critic and self.critic is not None and is_zero and self.device_mesh is None:
            save_pretrained_atomic(self.critic.seq_cls, self.tokenizer, Path(out_dir) / "critic", {"stage": "ppo_critic"})
        return str(merged)
