"""pass@k and mean@k from per-sample correctness flags (n samples per prompt).

pass@k is the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained
on Code", §2.1): with n samples of which c are correct, the chance that at least one of k samples
drawn without replacement is correct,

    pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n-c+1}^{n} (1 - k / i),

computed as that product (no huge binomials, no overflow); 1.0 when n - c < k. The benchmark
score is the mean of the per-prompt values. mean@k is the mean correctness of k samples (the
per-sample accuracy, an estimate of pass@1).

Flags are booleans (or 0/1); k > n raises, as the estimator is undefined there.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence

__all__ = ["group_by_prompt", "mean_at_k", "pass_at_k", "pass_at_k_from_flags", "pass_at_k_summary",
           "per_prompt_pass_at_k"]


def _check_k(n: int, k: int, where: str = "") -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{where}k must be an integer >= 1, got {k!r}")
    if k > n:
        raise ValueError(f"{where}k={k} is larger than the number of samples n={n}: "
                         "pass@k and mean@k need at least k samples per prompt")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one prompt with n samples of which c are correct.

    >>> pass_at_k(4, 1, 2)   # 1 - C(3,2)/C(4,2) = 1 - 3/6
    0.5
    """
    for name, value in (("n", n), ("c", c)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    if c > n:
        raise ValueError(f"c={c} correct samples is more than n={n} samples")
    _check_k(n, k)
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def _flags(flags: Iterable, where: str = "") -> list[bool]:
    out = []
    for j, flag in enumerate(flags):
        if flag is True or flag is False:
            out.append(flag)
        elif flag in (0, 1):  # 0/1 ints, numpy bools and ints
            out.append(bool(flag))
        else:
            raise ValueError(f"{where}sample {j}: correctness flags must be booleans or 0/1, got {flag!r}")
    return out


def pass_at_k_from_flags(flags: Sequence, k: int) -> float:
    """pass@k for one prompt from its n correctness flags."""
    flags = _flags(flags)
    return pass_at_k(len(flags), sum(flags), k)


def mean_at_k(flags: Sequence, k: int | None = None) -> float:
    """Mean correctness of the first k samples (all n when k is None) of one prompt.

    With k = n this is c / n, which is also pass@1 (the lower-variance estimate of it when more
    than k samples exist); a smaller k reports what a k-sample budget measures.
    """
    flags = _flags(flags)
    k = len(flags) if k is None else k
    _check_k(len(flags), k)
    return sum(flags[:k]) / k


def _prompts(flags_by_prompt) -> list[tuple[Hashable, list[bool]]]:
    items = list(flags_by_prompt.items()) if isinstance(flags_by_prompt, Mapping) else list(enumerate(flags_by_prompt))
    if not items:
        raise ValueError("no prompts: pass@k needs at least one prompt's flags")
    return [(key, _flags(flags, f"prompt {key!r}: ")) for key, flags in items]


def per_prompt_pass_at_k(flags_by_prompt: Sequence[Sequence] | Mapping[Hashable, Sequence], k: int) -> list[float]:
    """pass@k of each prompt, in input order; flags_by_prompt is a list of flag lists, or a
    mapping prompt id -> flag list. Prompts may have different n; each needs n >= k."""
    out = []
    for key, flags in _prompts(flags_by_prompt):
        _check_k(len(flags), k, f"prompt {key!r}: ")
        out.append(pass_at_k(len(flags), sum(flags), k))
    return out


def pass_at_k_summary(flags_by_prompt: Sequence[Sequence] | Mapping[Hashable, Sequence],
                      ks: Iterable[int] = (1,)) -> dict:
    """Benchmark-level scores: for each k, "pass@k" (the mean over prompts of the unbiased
    per-prompt pass@k) and "mean@k" (the mean over prompts of mean_at_k), plus "n_prompts" and
    "n_samples" (all flags). Raises when any prompt has fewer than k samples."""
    prompts = _prompts(flags_by_prompt)
    summary: dict = {"n_prompts": len(prompts), "n_samples": sum(len(f) for _, f in prompts)}
    for k in ks:
        passes, means = [], []
        for key, flags in prompts:
            _check_k(len(flags), k, f"prompt {key!r}: ")
            passes.append(pass_at_k(len(flags), sum(flags), k))
            means.append(sum(flags[:k]) / k)
        summary[f"pass@{k}"] = sum(passes) / len(passes)
        summary[f"mean@{k}"] = sum(means) / len(means)
    return summary


def group_by_prompt(prompt_ids: Sequence[Hashable], flags: Sequence) -> dict[Hashable, list[bool]]:
    """Flat per-sample rows (prompt id, flag), as rollouts come, grouped into prompt id -> flags
    in first-seen order."""
    if len(prompt_ids) != len(flags):
        raise ValueError(f"{len(prompt_ids)} prompt ids but {len(flags)} flags")
    grouped: dict[Hashable, list[bool]] = {}
    for pid, flag in zip(prompt_ids, _flags(flags)):
        grouped.setdefault(pid, []).append(flag)
    return grouped
