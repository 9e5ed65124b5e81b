"""From one rollout to the batch the updates train on: old and reference log-probs, values,
KL-penalised token rewards, GAE and whitened advantages (docs/methods.md §4.3-§4.6) or a critic-free
estimator (critic_free.py, docs/algorithms.md §1), plus the step's statistics, all computed over
every rank."""

from __future__ import annotations

import torch

from rlhf.core.token_losses import entropy_from_logits, masked_mean
from rlhf.rl.advantages import explained_variance, gae_advantages, kl_penalized_rewards, sequence_kl, whiten
from rlhf.rl.collectives import Collectives
from rlhf.rl.config import AlgorithmConfig, KLConfig, RolloutConfig, UpdateConfig
from rlhf.rl.critic_free import critic_free_advantages
from rlhf.rl.experience import Experience
from rlhf.rl.policy import PolicyModels
from rlhf.rl.rollout import Generation


@torch.no_grad()
def build_experience(models: PolicyModels, query_ids: torch.Tensor, query_mask: torch.Tensor,
                     generation: Generation, scores: torch.Tensor, beta: float, rollout: RolloutConfig,
                     kl: KLConfig, update: UpdateConfig, ranks: Collectives,
                     algorithm: AlgorithmConfig | None = None, greedy_scores: torch.Tensor | None = None
                     ) -> tuple[Experience, dict]:
    """greedy_scores: ReMax's baseline, the score of each row's greedy response."""
    algorithm = algorithm or AlgorithmConfig()
    ids, mask = generation.response_ids, generation.response_mask
    if rollout.logprobs_from_generation:
        old_logprobs, entropy, hidden = generation.logprobs, generation.entropy, generation.hidden
    else:
        old_logprobs, logits, hidden = models.logprobs(query_ids, query_mask, ids, mask,
                                                       with_hidden=models.uses_value_head)
        entropy = entropy_from_logits(logits)
        del logits
    ref_logprobs = models.reference_logprobs(query_ids, query_mask, ids, mask)
    reward_beta = beta if kl.placement == "reward" else 0.0
    rewards, kl_tokens = kl_penalized_rewards(scores, old_logprobs, ref_logprobs, mask, reward_beta, kl.estimator)
    if models.has_critic:
        old_values = models.values(query_ids, query_mask, ids, mask, hidden)
        advantages, returns = gae_advantages(rewards, old_values, mask, update.gamma, update.lam)
    else:
        advantages = critic_free_advantages(algorithm, scores, rewards, kl_tokens, reward_beta, mask,
                                            rollout.n_samples_per_prompt, update.gamma, ranks, greedy_scores)
        old_values = torch.zeros_like(advantages)
        returns = advantages  # nothing regresses on it; logged as the per-token learning signal
    all_mask = ranks.gather_rows(mask)
    all_adv = ranks.gather_rows(advantages)
    adv_mean = masked_mean(all_adv, all_mask)
    adv_std = masked_mean((all_adv - adv_mean) ** 2, all_mask).sqrt()
    if update.whiten_advantages:
        advantages = ranks.local_rows(whiten(all_adv, all_mask), advantages)
    n_tokens = mask.sum().float()
    token_means = {"kl_per_token": masked_mean(kl_tokens, mask), "entropy": masked_mean(entropy, mask)}
    if models.has_critic:
        token_means.update(values_mean=masked_mean(old_values, mask), returns_mean=masked_mean(returns, mask))
    token_stats = ranks.global_means(token_means, n_tokens)
    objective_kl = ranks.gather_rows(sequence_kl(kl_tokens, mask)).mean()
    stats = {**token_stats, "kl_objective": objective_kl, "advantage_mean": adv_mean, "advantage_std": adv_std,
             "beta": torch.tensor(beta)}
    if models.has_critic:
        stats["explained_variance"] = explained_variance(ranks.gather_rows(old_values), ranks.gather_rows(returns),
                                                         all_mask)
    experience = Experience(query_ids, query_mask, ids, mask, old_logprobs, ref_logprobs, old_values, advantages,
                            returns, rewards)
    return experience, stats
