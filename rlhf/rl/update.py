"""The update loop of one RL step: `epochs` passes over shuffled minibatches, each run as
length-sorted micro-batches whose gradients accumulate to the one-forward gradient; NaN/inf
losses or gradients skip the update on every rank together; an optional KL early stop.

Each rank's loss is weighted by its share of the minibatch's tokens over all ranks, so gradients
averaged over ranks equal the one-process gradient. DDP's gradient averaging is done here, once
per minibatch (one flat all-reduce): DDP's reducer wants a gradient for every trainable parameter
in every backward, which a critic-only warm-up step does not give the actor. FSDP2
reduce-scatters by itself.
"""

from __future__ import annotations

import logging

import torch
from lightning.pytorch.strategies import DDPStrategy

from rlhf.core.config import OptimConfig
from rlhf.core.errors import TrainingFault
from rlhf.core.gradients import grads_are_finite
from rlhf.core.token_losses import entropy_from_logits, masked_lm_loss, masked_mean
from rlhf.rl.collectives import Collectives
from rlhf.rl.advantages import kl_per_token
from rlhf.rl.config import AlgorithmConfig, KLConfig, UpdateConfig
from rlhf.rl.experience import Experience, length_sorted_micro_batches
from rlhf.rl.losses import clipped_policy_loss, clipped_value_loss, kl_penalty_loss
from rlhf.rl.policy_objectives import aggregation_weights, clipped_surrogate, gspo_loss
from rlhf.rl.policy import PolicyModels
from rlhf.rl.rollout import position_ids

log = logging.getLogger(__name__)


class UpdateLoop:
    def __init__(self, module, update: UpdateConfig, kl: KLConfig, actor_optim: OptimConfig,
                 critic_optim: OptimConfig, seed: int, algorithm: AlgorithmConfig | None = None,
                 max_new_tokens: int | None = None):
        self.module = module
        self.cfg, self.kl = update, kl
        self.algo = algorithm or AlgorithmConfig()
        self.norm_constant = self.algo.norm_constant or max_new_tokens
        self.actor_optim, self.critic_optim = actor_optim, critic_optim
        self.seed = seed
        self.ranks = Collectives(module)
        self.skipped_updates = 0
        self.nonfinite_in_a_row = 0

    # ------------------------------------------------------------------------------- losses
    @property
    def _is_plain_ppo(self) -> bool:
        """Today's PPO surrogate: symmetric clip, no dual clip, token mean (kept on its own formula)."""
        a = self.algo
        return (a.policy_loss == "clipped" and a.clip_low is None and a.clip_high is None and a.dual_clip is None
                and a.loss_aggregation == "token_mean")

    def _policy_loss(self, logprobs, mb: Experience, mask, beta: float, scale, total_rows
                     ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(actor loss in token-mean units — the caller multiplies by this slice's token share —, the
        policy term alone, stats) under algorithm.policy_loss / loss_aggregation (docs/algorithms.md §2)."""
        a = self.algo
        kl_in_loss = self.kl.placement == "loss"
        if self._is_plain_ppo:  # kept term for term as before, so PPO's numbers do not move
            pg_loss, stats = clipped_policy_loss(logprobs, mb.old_logprobs, mb.advantages, mask, self.cfg.clip_eps)
            return pg_loss, pg_loss, stats
        low = self.cfg.clip_eps if a.clip_low is None else a.clip_low
        if a.policy_loss == "clipped":
            per_token, stats = clipped_surrogate(logprobs, mb.old_logprobs, mb.advantages, mask, low, a.clip_high,
                                                 a.dual_clip)
        else:
            high = low if a.clip_high is None else a.clip_high
            per_token, stats = gspo_loss(logprobs, mb.old_logprobs, mb.advantages, mask, low, high,
                                         token_level=a.policy_loss == "gspo_token")
        pg_tokens = per_token
        if kl_in_loss:  # inside each sequence's reduction, as GRPO's eq. 3 (docs/algorithms.md §1.1)
            kl = kl_per_token(logprobs, mb.ref_logprobs, self.kl.estimator)
            per_token = per_token + beta * torch.where(mask.bool(), kl, torch.zeros_like(kl))
        if a.loss_aggregation == "token_mean":
            return masked_mean(per_token, mask), masked_mean(pg_tokens, mask), stats
        weights = aggregation_weights(mask, a.loss_aggregation, total_rows, self.norm_constant).to(per_token.dtype)
        share = self.ranks.world_size / scale  # undone by the caller's scale
        rows_here = mask.bool().any(dim=1).sum().clamp_min(1)
        return (per_token * weights).sum() * share, (pg_tokens * weights).sum() * total_rows / rows_here, stats

    def _losses(self, models: PolicyModels, mb: Experience, train_actor: bool, total_tokens: torch.Tensor,
                beta: float, total_rows: torch.Tensor) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """(loss, detached stats, local token count) of one micro-batch, weighted by its share of the
        minibatch's tokens (or rows, for the sequence aggregations) over all ranks."""
        device = self.module.device
        mask = mb.response_mask
        n_local = mask.sum().float()
        scale = n_local * self.ranks.world_size / total_tokens
        stats = {}
        hidden = None
        actor_loss = torch.zeros((), device=device)
        if train_actor or models.uses_value_head:
            logprobs, logits, hidden = models.logprobs(mb.query_ids, mb.query_mask, mb.response_ids, mask,
                                                       with_hidden=models.uses_value_head,
                                                       with_logits=self.cfg.entropy_coef > 0)
            actor_loss, pg_loss, pg_stats = self._policy_loss(logprobs, mb, mask, beta, scale, total_rows)
            if self.cfg.entropy_coef > 0:  # a [B, R, V] softmax (≈ 3 % of a CPU step): only when the bonus is on;
                entropy = masked_mean(entropy_from_logits(logits), mask)  # the rollout's entropy is logged anyway
                actor_loss = actor_loss - self.cfg.entropy_coef * entropy
                stats["train_entropy"] = entropy
            if self.kl.placement == "loss" and self._is_plain_ppo:
                actor_loss = actor_loss + beta * kl_penalty_loss(logprobs, mb.ref_logprobs, mask, self.kl.estimator)
            stats.update(policy_loss=pg_loss, policy_clipfrac=pg_stats["clipfrac"], approx_kl=pg_stats["approx_kl"],
                         **{k: pg_stats[k] for k in ("ratio_mean", "seq_ratio_mean", "clipfrac_high", "clipfrac_low",
                                                      "dual_clipfrac") if k in pg_stats})
            actor_loss = actor_loss * scale * (1.0 if train_actor else 0.0)
        total = actor_loss
        if models.has_critic:
            values = models.values(mb.query_ids, mb.query_mask, mb.response_ids, mask, hidden)
            value_loss, v_stats = clipped_value_loss(values, mb.old_values, mb.returns, mask, self.cfg.clip_value)
            stats.update(value_loss=value_loss, value_clipfrac=v_stats["value_clipfrac"])
            vf_coef = self.cfg.vf_coef if models.uses_value_head else 1.0
            total = actor_loss + vf_coef * value_loss * scale
        return total, {k: v.detach() for k, v in stats.items()}, n_local

    def _ptx_loss(self, models: PolicyModels, ptx_stream) -> torch.Tensor:
        """Pretraining LM loss on the next PTX batch (Qwen, docs/methods.md §4.9): one batch per minibatch."""
        ptx = {k: v.to(self.module.device) for k, v in ptx_stream.next_batch().items()}
        logits = models.actor(input_ids=ptx["input_ids"], attention_mask=ptx["attention_mask"],
                              position_ids=position_ids(ptx["attention_mask"]), use_cache=False).logits
        return masked_lm_loss(logits, ptx["labels"])

    # ------------------------------------------------------------------------- backward, sync
    @property
    def _syncs_ddp_by_hand(self) -> bool:
        return isinstance(self.module.trainer.strategy, DDPStrategy) and self.ranks.world_size > 1

    def _backward_if_finite(self, loss: torch.Tensor) -> bool:
        """manual_backward (without DDP's own sync) unless the loss is NaN/inf on any rank; all ranks
        agree, so they all skip together and FSDP2's collectives stay in step."""
        if not self.ranks.on_every_rank(bool(torch.isfinite(loss.detach()).all())):
            return False
        if not self._syncs_ddp_by_hand:
            self.module.manual_backward(loss)
            return True
        with self.module.trainer.model.no_sync():
            self.module.manual_backward(loss)
        return True

    def _sync_gradients(self) -> None:
        if not self._syncs_ddp_by_hand:
            return
        grads = [p.grad for p in self.module.parameters() if p.grad is not None]
        flat = torch._utils._flatten_dense_tensors(grads)
        torch.distributed.all_reduce(flat)
        flat /= self.ranks.world_size
        for grad, synced in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
            grad.copy_(synced)

    def _accumulate(self, models: PolicyModels, mb: Experience, train_actor: bool, beta: float, ptx_stream
                    ) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """Forward + backward of one minibatch as micro-batches, then the PTX term; (summed loss,
        token-weighted stats, local tokens). A term that is NaN/inf on any rank stops the minibatch
        with a non-finite loss on every rank, so the caller drops the update."""
        n_local = mb.response_mask.sum().float()
        total_tokens = self.ranks.sum_all(n_local).clamp_min(1)
        total_rows = (self.ranks.sum_all(mb.response_mask.bool().any(dim=1).sum().float()).clamp_min(1)
                      if self.algo.loss_aggregation != "token_mean" else None)
        sums: dict[str, torch.Tensor] = {}
        loss_sum = torch.zeros((), device=self.module.device)
        for part in length_sorted_micro_batches(mb, self.cfg.micro_batch_size, by_prompt=models.shared_prompt):
            loss, stats, n_part = self._losses(models, part, train_actor, total_tokens, beta, total_rows)
            loss_sum = loss_sum + loss.detach()
            if not self._backward_if_finite(loss):
                return _non_finite(loss_sum), {}, n_local
            for name, value in stats.items():
                sums[name] = sums.get(name, 0.0) + value * n_part
        stats = {name: total / n_local.clamp_min(1) for name, total in sums.items()}
        if train_actor and self.cfg.ptx_coef > 0:  # one PTX batch per minibatch, however it is cut
            ptx_loss = self._ptx_loss(models, ptx_stream)
            loss_sum = loss_sum + self.cfg.ptx_coef * ptx_loss.detach()
            if not self._backward_if_finite(self.cfg.ptx_coef * ptx_loss):
                return _non_finite(loss_sum), {}, n_local
            stats["ptx_loss"] = ptx_loss.detach()
        self._sync_gradients()
        return loss_sum, stats, n_local

    # ----------------------------------------------------------------------------- the loop
    def run(self, models: PolicyModels, experience: Experience, iteration: int, train_actor: bool, beta: float,
            ptx_stream=None) -> dict:
        optimizers = self.module.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        actor_opt = optimizers[0].optimizer
        critic_opt = optimizers[1].optimizer if len(optimizers) > 1 else None
        rows = experience.n_rows
        size = int(self.cfg.minibatch_size or rows)
        stop_kl = self.cfg.early_stop_kl
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + iteration)
        history: dict[str, list] = {}
        updates, stopped = 0, False
        for _ in range(self.cfg.epochs):
            order = torch.randperm(rows, generator=generator).to(self.module.device)
            for start in range(0, rows, size):
                loss, stats, n_local = self._accumulate(models, experience.rows(order[start:start + size]),
                                                        train_actor, beta, ptx_stream)
                if not bool(torch.isfinite(loss)):  # every rank agreed in _accumulate
                    _zero_grads(actor_opt, critic_opt)
                    self._skip_update(iteration, f"loss {float(loss)}")
                    continue
                stats = self.ranks.global_means(stats, n_local)
                if stop_kl is not None and train_actor and float(stats["approx_kl"]) > float(stop_kl):
                    _zero_grads(actor_opt, critic_opt)
                    stopped = True
                    break
                if not self.ranks.on_every_rank(all(grads_are_finite(o) for o in (actor_opt, critic_opt) if o)):
                    _zero_grads(actor_opt, critic_opt)
                    self._skip_update(iteration, "a NaN/inf gradient")
                    continue
                self.nonfinite_in_a_row = 0
                if critic_opt is not None:
                    stats["critic_grad_norm"] = self._step(critic_opt, self.critic_optim)
                if train_actor:
                    stats["actor_grad_norm"] = self._step(actor_opt, self.actor_optim)
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

    def _skip_update(self, iteration: int, what: str) -> None:
        """A minibatch with a NaN/inf loss or gradient changes no weight; too many in a row end the run
        (the optimizers are stepped here directly, so the NonFiniteGuard callback does not see them)."""
        self.skipped_updates += 1
        self.nonfinite_in_a_row += 1
        log.warning("RL step %d: %s -> minibatch update skipped (%d in a row, %d in total)",
                    iteration, what, self.nonfinite_in_a_row, self.skipped_updates)
        if self.nonfinite_in_a_row >= self.cfg.max_nonfinite_in_a_row:
            raise TrainingFault(
                f"step {iteration}: {self.nonfinite_in_a_row} minibatch updates in a row had a NaN/inf loss or "
                f"gradient (last: {what}). Likely causes: learning rate too high, bf16/fp16 overflow, a reward "
                f"model returning NaN, or advantages whitened over a batch with zero variance.")

    def _step(self, optimizer, cfg: OptimConfig) -> torch.Tensor:
        """Clip (per optimizer) and step; returns the gradient norm before clipping."""
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        if cfg.grad_clip:
            self.module.clip_gradients(optimizer, gradient_clip_val=float(cfg.grad_clip),
                                       gradient_clip_algorithm="norm")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return norm.detach()


def _zero_grads(*optimizers) -> None:
    for optimizer in optimizers:
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)


def _non_finite(loss_sum: torch.Tensor) -> torch.Tensor:
    """The summed loss, made NaN when only another rank's term was bad, so every rank skips."""
    return loss_sum if not bool(torch.isfinite(loss_sum)) else torch.full_like(loss_sum, float("nan"))
