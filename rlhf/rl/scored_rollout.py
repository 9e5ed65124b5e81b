"""Rollouts and their rewards for one RL step: sample from the actor, score with the reward, refill
groups of equal scores under DAPO's dynamic sampling (Yu et al. 2025 §3.2), and ReMax's greedy
baseline (Li et al. 2023 §4). Reads the module's actor, tokenizer, reward and refill stream when
called, since they are built after the module (configure_model, on_fit_start)."""

from __future__ import annotations

import dataclasses

import torch

from rlhf.rl.dynamic_sampling import dynamic_sample
from rlhf.rl.rollout_step import Rollout, roll_out

REFILL_SEED_STRIDE = 7919
"""Seed offset of the i-th refill's sampling, so refills never repeat the first draw's noise."""


class RolloutScorer:
    def __init__(self, module):
        self.module = module
        self.cfg = module.cfg

    def roll_out(self, batch: dict, iteration: int, seed: int, rollout_cfg=None) -> Rollout:
        m, cfg = self.module, rollout_cfg or self.cfg.rollout
        return roll_out(m.actor, m.tokenizer, batch, iteration, seed, cfg, m.device,
                        fixed_length=m.device_mesh is not None,
                        with_hidden=cfg.logprobs_from_generation and m.uses_value_head)

    def score(self, rollout: Rollout):
        """The reward's result (rlhf.rewards.weighted_sum.RewardResult: total, parts, details) and
        the total as a float tensor on this device."""
        result = self.module.reward_fn(rollout.prompts, rollout.texts, rollout.metadata)
        return result, result.scores.float().to(self.module.device)

    def __call__(self, batch: dict, iteration: int):
        """(rollout, raw scores, the reward's result, counts): dynamic sampling refills groups of equal scores."""
        seed = self.module.seed
        rollout = self.roll_out(batch, iteration, seed)
        result, raw = self.score(rollout)
        algo = self.cfg.algorithm
        if not algo.dynamic_sampling:
            return rollout, raw, result, {}

        results = [result]

        def refill(i: int):
            extra = self.roll_out(self.module.refill_stream.next_batch(), iteration, seed + REFILL_SEED_STRIDE * (i + 1))
            extra_result, extra_raw = self.score(extra)
            results.append(extra_result)
            return extra, extra_raw

        rollout, raw, counts, rows = dynamic_sample(rollout, raw, self.cfg.rollout.n_samples_per_prompt,
                                                    algo.max_refills, refill, self.module.ranks.on_every_rank,
                                                    self.module.tokenizer.pad_token_id)
        result = type(result).of_rows(results, rows)  # the kept rows' parts and details, for logging
        return rollout, raw, result, {f"dynamic_sampling/{k}": torch.tensor(v) for k, v in counts.items()}

    def greedy_baseline(self, batch: dict, iteration: int) -> torch.Tensor:
        """ReMax: the shaped score of each prompt's greedy response, repeated over its samples; the
        running score statistics do not move (the baseline is not a sample of the policy's rewards)."""
        greedy_cfg = dataclasses.replace(self.cfg.rollout, n_samples_per_prompt=1, top_k=1)
        greedy = self.roll_out(batch, iteration, self.module.seed, greedy_cfg)
        g = greedy.generation
        shaped = self.module.shaper(self.score(greedy)[1], g.ended, self.module.ranks.gather_rows,
                                    g.response_mask.sum(1), update_stats=False)
        return shaped.repeat_interleave(self.cfg.rollout.n_samples_per_prompt)
