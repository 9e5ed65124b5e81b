"""PPO's reward: one or several reward components summed with weights, and what a call returns.

    total = Σ_i weight_i · score_i          (one component: weight · score; the default weight is 1)

`rlhf.rewards.build.build_reward` always returns a WeightedSumReward, so the caller has one
interface whatever the config: `reward(prompts, responses, metadata) -> RewardResult`, or the
older `reward.score(prompts, responses) -> tensor [B]` (metadata then defaults to empty dicts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from rlhf.core.errors import ConfigError
from rlhf.rewards.component import RewardComponent, RewardError, as_component, score_stats

TOTAL = "total"


@dataclass
class RewardResult:
    """What one call of PPO's reward returns, for a batch of B responses.

    scores: float32 tensor [B] on CPU, Σ_i weight_i · parts[name_i]: what PPO shapes and optimises.
    parts: component name -> float32 tensor [B] on CPU, that component's own (unweighted) scores,
      after invalid ones were replaced by its fill value.
    weights: component name -> its weight.
    details: component name -> {key: [B values]}, the per-response details the reward returned
      (e.g. verifiable rewards: `parsed`, `hit`, `pred`, `ref_parsed`), plus `invalid` [bool] when
      some of its scores were replaced (on_invalid=skip).
    stats: name -> {stat: float} over this batch (rlhf.rewards.component.score_stats): each
      component's `mean`, `std`, `min`, `max`, `invalid` and boolean-detail rates (`hit_rate`,
      `parsed_rate`, ...), and `total` -> the same for `scores`. Computed on this process's batch;
      under DDP gather `parts` and call score_stats for exact global values.
    """

    scores: torch.Tensor
    parts: dict[str, torch.Tensor]
    weights: dict[str, float]
    details: dict[str, dict[str, list]] = field(default_factory=dict)
    stats: dict[str, dict[str, float]] = field(default_factory=dict)

    def metrics(self, prefix: str = "reward") -> dict[str, float]:
        """Flat `{prefix}/{name}/{stat}: value`, e.g. reward/math_answer/hit_rate, reward/total/mean."""
        return {f"{prefix}/{name}/{stat}": value for name, stats in self.stats.items() for stat, value in stats.items()}

    @classmethod
    def of_rows(cls, results: Sequence["RewardResult"], rows: Sequence[int]) -> "RewardResult":
        """The given rows of several results of the same reward, as one result (dynamic sampling keeps
        some rows of several scored batches): nothing is scored again, statistics are recomputed."""
        index = torch.tensor(list(rows), dtype=torch.long)
        parts = {name: torch.cat([r.parts[name] for r in results])[index] for name in results[0].parts}
        details = {name: {key: [value for r in results for value in r.details[name][key]] for key in cols}
                   for name, cols in results[0].details.items()}
        details = {name: {key: [column[i] for i in rows] for key, column in cols.items()} for name, cols in details.items()}
        stats = {name: score_stats(parts[name], details.get(name), int(sum(details.get(name, {}).get("invalid", []))))
                 for name in parts}
        scores = torch.cat([r.scores for r in results])[index]
        stats[TOTAL] = score_stats(scores)
        return cls(scores, parts, dict(results[0].weights), details, stats)

    def rows(self) -> list[dict]:
        """One dict per response for a samples file: {"reward": total, "rewards": {name: score},
        "details": {name: {key: value}}}."""
        parts = {name: scores.tolist() for name, scores in self.parts.items()}
        return [{"reward": float(total),
                 "rewards": {name: values[i] for name, values in parts.items()},
                 "details": {name: {key: column[i] for key, column in cols.items()}
                             for name, cols in self.details.items() if cols}}
                for i, total in enumerate(self.scores.tolist())]


def _unique_names(parts: list[RewardComponent]) -> None:
    seen: dict[str, int] = {}
    for part in parts:
        if part.name == TOTAL:
            raise ConfigError("reward_fn.name", f"'{TOTAL}' names the weighted sum itself; give this reward another name")
        count = seen.get(part.name, 0) + 1
        seen[part.name] = count
        if count > 1:
            part.name = f"{part.name}_{count}"


class WeightedSumReward:
    """Σ_i w_i · s_i over reward components (e.g. a verifiable reward plus a format bonus and a
    length penalty). Each part is a RewardComponent, or any reward callable / scorer (wrapped
    with weight 1). `weights`, when given, override the components' own weights."""

    def __init__(self, parts: Sequence[RewardComponent | Callable], weights: Sequence[float] | None = None):
        parts = [as_component(p) for p in parts]
        if not parts:
            raise ConfigError("reward_fn", "an empty list of rewards")
        if weights is not None:
            if len(weights) != len(parts):
                raise ConfigError("reward_fn.weights", f"need one weight per reward; got {len(parts)} rewards, "
                                                       f"{len(weights)} weights")
            for part, weight in zip(parts, weights):
                part.weight = float(weight)
        _unique_names(parts)
        self.parts = parts

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parts]

    @property
    def required_fields(self) -> tuple[str, ...]:
        """Every metadata field some part reads, in first-seen order."""
        return tuple(dict.fromkeys(f for p in self.parts for f in p.required_fields))

    def __call__(self, prompts: Sequence, responses: Sequence[str],
                 metadata: Sequence[dict] | None = None) -> RewardResult:
        total = torch.zeros(len(responses), dtype=torch.float32)
        parts, details, stats = {}, {}, {}
        for part in self.parts:
            scores, part_details, invalid = part.evaluate(prompts, responses, metadata)
            total = total + part.weight * scores
            parts[part.name], details[part.name] = scores, part_details
            stats[part.name] = score_stats(scores, part_details, invalid)
        stats[TOTAL] = score_stats(total)
        return RewardResult(total, parts, {p.name: p.weight for p in self.parts}, details, stats)

    def score(self, prompts: Sequence, responses: Sequence[str]) -> torch.Tensor:
        """The total alone, float32 [B] on CPU, with empty metadata (the older caller's protocol)."""
        if self.required_fields:
            raise RewardError(f"reward {self.names} reads metadata {list(self.required_fields)}, which "
                              "reward.score(prompts, responses) cannot pass; call reward(prompts, responses, metadata) "
                              "with the batch's metadata, one dict per response")
        return self(prompts, responses).scores

    def state_dict(self) -> dict:
        """Running statistics of stateful parts (CRS). One part: its own state, as checkpoints
        written before rewards were components hold it; several: {name: state}."""
        states = {p.name: p.fn.state_dict() for p in self.parts if _stateful(p.fn)}
        if len(self.parts) == 1:
            return next(iter(states.values()), {})
        return states

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        if len(self.parts) == 1:
            if _stateful(self.parts[0].fn):
                self.parts[0].fn.load_state_dict(state)
            return
        for part in self.parts:
            if part.name in state and _stateful(part.fn):
                part.fn.load_state_dict(state[part.name])


def _stateful(fn) -> bool:
    """Has running state to checkpoint: state_dict/load_state_dict, and is not a torch module (a
    reward model's weights are never checkpointed with PPO)."""
    return hasattr(fn, "state_dict") and hasattr(fn, "load_state_dict") and not isinstance(fn, torch.nn.Module)
