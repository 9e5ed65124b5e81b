"""Advantages without a critic: picks the estimator of `algorithm.advantage` (docs/algorithms.md §1)
and feeds it the step's rewards. The formulas stay in group_advantages.py.

Rows are laid out as the rollout makes them: the n samples of a prompt are contiguous and on one
rank, so group statistics never depend on how prompts are split across ranks. REINFORCE++'s
normalisation is over the global batch and is computed on the rows of every rank.
"""

from __future__ import annotations

import torch

from rlhf.rl.collectives import Collectives
from rlhf.rl.config import AlgorithmConfig
from rlhf.rl.group_advantages import (global_whiten, grpo_advantages, reinforce_pp_baseline_returns,
                                      remax_advantages, returns_to_go, rloo_advantages)


def critic_free_advantages(algo: AlgorithmConfig, scores: torch.Tensor, token_rewards: torch.Tensor,
                           kl_tokens: torch.Tensor, reward_beta: float, mask: torch.Tensor, n_samples: int,
                           gamma: float, ranks: Collectives, greedy_scores: torch.Tensor | None = None
                           ) -> torch.Tensor:
    """Per-token advantages [B, T], 0 on padding.

    scores: the shaped sequence scores [B]; token_rewards: −β·KL_t plus the score on the last token
    (β = 0 unless the KL sits in the reward). The sequence estimators (GRPO, RLOO, ReMax) read the
    row's summed token reward, score − β Σ_t KL_t, so a KL in the reward reaches them too.
    """
    kind = algo.advantage
    sequence_rewards = token_rewards.sum(dim=1)
    if kind == "grpo":
        return grpo_advantages(sequence_rewards, n_samples, mask, scale_std=algo.scale_std, eps=algo.std_eps,
                               unbiased=algo.unbiased_std)
    if kind == "rloo":
        return rloo_advantages(sequence_rewards, n_samples, mask)
    if kind == "remax":
        if greedy_scores is None:
            raise ValueError("remax needs the greedy rollout's scores")
        return remax_advantages(sequence_rewards, greedy_scores, mask)
    if kind == "reinforce_pp":
        returns = returns_to_go(token_rewards, mask, gamma)
    elif kind == "reinforce_pp_baseline":
        returns = reinforce_pp_baseline_returns(scores, n_samples, mask, kl_tokens, reward_beta, gamma)
    else:
        raise ValueError(f"{kind!r} is not a critic-free advantage")
    return ranks.local_rows(global_whiten(ranks.gather_rows(returns), ranks.gather_rows(mask)), returns)
