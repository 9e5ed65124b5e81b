"""One reward behind one interface: any callable, checked, with its scores as a float32 tensor.

A reward is any callable

    reward(prompts: list[list[dict]], responses: list[str], metadata: list[dict])
        -> scores                      # one number per response (list, tuple, array or tensor)
        -> (scores, details)           # details: {key: [one value per response]}

named in config by `_target_` (a class instance, or a plain function with `_partial_: true`),
with one metadata dict per response ({"id": ..., "answer": ...}; see docs/rewards.md). An object
with a `score(prompts, responses)` method (the saved reward model, CRS, word count) is called
through that method instead, without metadata.

`RewardComponent` wraps one such callable: it calls it, turns what it returns into a float32 CPU
tensor [B], checks it (the count; NaN and inf: `on_invalid=error` stops, `skip` counts and logs
them and scores them `fill_value`), turns an exception into a RewardError naming the reward and
the prompt id, and computes the part's statistics (`score_stats`).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from rlhf.core.errors import ConfigError, RLHFError

log = logging.getLogger(__name__)

ON_INVALID = ("error", "skip")


class RewardError(RLHFError, RuntimeError):
    """A reward raised, or returned what is not one finite score per response."""


def _prompt_id(metadata: Sequence[dict], index: int) -> str:
    row = metadata[index] if index < len(metadata) else None
    return str(row["id"]) if isinstance(row, dict) and "id" in row else f"#{index} of the batch"


def declared_fields(fn) -> tuple[str, ...]:
    """The metadata fields a reward callable reads: its `required_fields` (a class or instance
    attribute, or an attribute set on a function; looked up through functools.partial)."""
    target = fn.func if isinstance(fn, functools.partial) else fn
    fields = getattr(target, "required_fields", ()) or ()
    return (fields,) if isinstance(fields, str) else tuple(fields)


def score_stats(scores: torch.Tensor, details: dict[str, list] | None = None,
                invalid: int | None = None) -> dict[str, float]:
    """Statistics of one part's scores over a batch: mean, std (population), min, max, `invalid`
    (scores replaced by the fill value; when given), and for each boolean detail column its rate:
    `hit_rate` for a binary reward (verifiable and format rewards report `hit`), `parsed_rate`,
    `ref_parsed_rate`, `invalid_rate`."""
    values = scores.detach().float().cpu()
    stats = {} if invalid is None else {"invalid": float(invalid)}
    if values.numel() == 0:
        return stats
    stats = {"mean": float(values.mean()), "std": float(values.std(unbiased=False)), "min": float(values.min()),
             "max": float(values.max()), **stats}
    for key, column in (details or {}).items():
        if column and all(isinstance(v, bool) for v in column):
            stats[f"{key}_rate"] = sum(column) / len(column)
    return stats


class RewardComponent:
    """One named, weighted reward: `fn` plus how its output is checked.

    fn: the reward callable (see the module docstring).
    name: the name its statistics are logged under (`reward/<name>/mean`); default: fn's name.
    weight: its weight when the rewards are summed (rlhf.rewards.weighted_sum).
    on_invalid: a NaN or inf score, or the wrong number of scores: "error" stops with a RewardError
      naming the reward and the prompt; "skip" replaces each such score by `fill_value`, counts
      it (`invalid` in the stats, `invalid_total` over the run) and logs a warning.
    required_fields: the metadata fields fn reads; default: fn's own `required_fields`. Checked
      on every call, and before the run starts (rlhf.config.fit) against the data config.
    """

    def __init__(self, fn: Any, name: str | None = None, weight: float = 1.0, on_invalid: str = "error",
                 fill_value: float = 0.0, required_fields: list[str] | None = None):
        if not callable(fn) and not hasattr(fn, "score"):
            raise ConfigError("reward_fn.fn", f"a reward must be callable (prompts, responses, metadata) or have "
                                              f".score(prompts, responses); got {type(fn).__name__}")
        if on_invalid not in ON_INVALID:
            raise ConfigError("reward_fn.on_invalid", f"unknown action {on_invalid!r}; allowed: {', '.join(ON_INVALID)}")
        for key, value in (("weight", weight), ("fill_value", fill_value)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"reward_fn.{key}", f"must be a finite number, got {value!r}")
        self.fn = fn
        self.name = name or _callable_name(fn)
        self.weight = float(weight)
        self.on_invalid = on_invalid
        self.fill_value = float(fill_value)
        self.required_fields = tuple(required_fields) if required_fields is not None else declared_fields(fn)
        self.uses_score_method = hasattr(fn, "score") and not isinstance(fn, functools.partial)
        self.invalid_total = 0

    def __repr__(self) -> str:
        return f"RewardComponent(name={self.name!r}, weight={self.weight}, fn={self.fn!r})"

    def _call(self, prompts, responses, metadata):
        if self.uses_score_method:
            return self.fn.score(prompts, responses)
        return self.fn(prompts, responses, metadata)

    def _raised(self, error: Exception, prompts, responses, metadata) -> RewardError:
        """The error of a batch that raised, naming the first prompt that raises on its own."""
        if len(responses) > 1:
            for i in range(len(responses)):
                try:
                    self._call(prompts[i:i + 1], responses[i:i + 1], metadata[i:i + 1])
                except Exception as single:
                    return RewardError(f"reward '{self.name}' failed on prompt id {_prompt_id(metadata, i)} "
                                       f"(response {i} of a batch of {len(responses)}): "
                                       f"{type(single).__name__}: {single}")
        ids = ", ".join(_prompt_id(metadata, i) for i in range(min(len(responses), 4)))
        return RewardError(f"reward '{self.name}' failed on a batch of {len(responses)} responses (prompt ids "
                           f"{ids}{', ...' if len(responses) > 4 else ''}): {type(error).__name__}: {error}")

    def _check_fields(self, metadata: Sequence[dict]) -> None:
        for i, row in enumerate(metadata):
            missing = [f for f in self.required_fields if f not in row]
            if missing:
                raise RewardError(f"reward '{self.name}' reads metadata field(s) {missing}, which prompt id "
                                  f"{_prompt_id(metadata, i)} lacks (its metadata has: {sorted(row)}); map them in "
                                  "the data config: data.sources.<i>.metadata_fields.<field>=<field in the source>")

    def evaluate(self, prompts: Sequence, responses: Sequence[str],
                 metadata: Sequence[dict] | None = None) -> tuple[torch.Tensor, dict[str, list], int]:
        """(scores float32 [B] on CPU, details {key: [B values]} with an `invalid` column when any
        score was replaced, number of replaced scores)."""
        n = len(responses)
        metadata = [{} for _ in responses] if metadata is None else list(metadata)
        if len(metadata) != n or len(prompts) != n:
            raise RewardError(f"reward '{self.name}': got {len(prompts)} prompts, {n} responses and {len(metadata)} "
                              "metadata rows; one prompt and one metadata dict per response is expected "
                              "(repeat them for several samples of a prompt)")
        self._check_fields(metadata)
        try:
            raw = self._call(prompts, responses, metadata)
        except RewardError:
            raise
        except Exception as error:
            raise self._raised(error, prompts, responses, metadata) from error
        details: dict[str, list] = {}
        if isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[1], dict):
            raw, details = raw[0], dict(raw[1])
        for key, column in details.items():
            if not isinstance(column, (list, tuple)) or len(column) != n:
                got = f"{len(column)} values" if isinstance(column, (list, tuple)) else type(column).__name__
                raise RewardError(f"reward '{self.name}': details[{key!r}] must be a list of one value per response "
                                  f"({n}), got {got}")
            details[key] = list(column)
        scores, problem = self._as_scores(raw, n)
        bad = ~torch.isfinite(scores) if problem is None else torch.ones(n, dtype=torch.bool)
        invalid = int(bad.sum())
        if invalid:
            first = int(bad.nonzero()[0]) if n else 0
            what = problem or f"{invalid} of {n} scores are NaN or inf (first: {float(scores[first])})"
            if self.on_invalid == "error":
                raise RewardError(f"reward '{self.name}' returned invalid scores: {what}, at prompt id "
                                  f"{_prompt_id(metadata, first)}; fix the reward or set on_invalid=skip to score "
                                  f"them fill_value={self.fill_value}")
            self.invalid_total += invalid
            log.warning("reward '%s': %s (first at prompt id %s); scored %s (on_invalid=skip, %d so far)",
                        self.name, what, _prompt_id(metadata, first), self.fill_value, self.invalid_total)
            scores = torch.where(bad, torch.tensor(self.fill_value), scores if problem is None else torch.zeros(n))
            details["invalid"] = bad.tolist()
        return scores, details, invalid

    def _as_scores(self, raw, n: int) -> tuple[torch.Tensor, str | None]:
        """The scores as float32 [n] (None becomes NaN), or (NaN-free zeros, what is wrong) when they
        are not one number per response."""
        try:
            if isinstance(raw, torch.Tensor):
                scores = raw.detach().to("cpu", torch.float32)
            else:
                values = raw.tolist() if hasattr(raw, "tolist") else list(raw)
                scores = torch.tensor([math.nan if v is None else float(v) for v in values], dtype=torch.float32)
        except (TypeError, ValueError) as error:
            raise RewardError(f"reward '{self.name}' must return numbers, one per response; got "
                              f"{type(raw).__name__} ({error})") from error
        if scores.ndim == 2 and scores.shape[1] == 1:
            scores = scores[:, 0]
        if scores.ndim != 1 or scores.numel() != n:
            return torch.zeros(n), f"returned {tuple(scores.shape)} scores for {n} responses"
        return scores, None


def _callable_name(fn) -> str:
    target = fn.func if isinstance(fn, functools.partial) else fn
    return getattr(target, "__name__", None) or type(target).__name__


def as_component(fn: Callable | RewardComponent, name: str | None = None) -> RewardComponent:
    return fn if isinstance(fn, RewardComponent) else RewardComponent(fn, name=name)
