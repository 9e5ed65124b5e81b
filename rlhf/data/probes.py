"""Probe ranking test for reward models (thesis §5.3.2, Tables 24-27; docs/methods.md §3.8).

Each probe prompt has four replies of falling quality: best, weak (on topic but poor), off-topic
(fluent but answers something else) and nonsense. A good RM scores them in that order; the thesis
used this to see which absolute-RM variant tells "bad" from "irrelevant". The shipped fixture,
probe_set.jsonl next to this file, was written by hand for this project (the thesis's probes came
from ChatGPT and are not reproduced).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

from rlhf.core.errors import DataError

PROBE_ORDER = ("best", "weak", "off_topic", "nonsense")
DEFAULT_PROBE_SET = Path(__file__).with_name("probe_set.jsonl")


def load_probe_set(path: str | Path | None = None) -> list[dict]:
    """Probes as {"id", "prompt": messages, "responses": [best, weak, off_topic, nonsense]}.

    File format: one JSON object per line with "id", "prompt" (messages ending with a user turn)
    and one string per PROBE_ORDER key.
    """
    path = Path(path) if path is not None else DEFAULT_PROBE_SET
    probes = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"not valid JSON ({err.msg})", source=str(path), record=line_no) from err
            prompt = row.get("prompt")
            if (
                not isinstance(prompt, list)
                or not prompt
                or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in prompt)
                or prompt[-1].get("role") != "user"
            ):
                raise DataError(
                    "'prompt' must be a list of {role, content} messages ending with a user turn",
                    source=str(path),
                    record=line_no,
                )
            missing = [key for key in PROBE_ORDER if not isinstance(row.get(key), str) or not row[key].strip()]
            if missing:
                raise DataError(
                    f"missing or empty replies {missing}; each probe needs a string for {list(PROBE_ORDER)}",
                    source=str(path),
                    record=line_no,
                )
            probes.append(
                {"id": row.get("id", line_no), "prompt": prompt, "responses": [row[key] for key in PROBE_ORDER]}
            )
    if not probes:
        raise DataError("probe set is empty", source=str(path))
    return probes


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """τ_b = (C − D) / sqrt((n0 − n_x)(n0 − n_y)), n0 = n(n−1)/2, n_x / n_y = pairs tied in x / y.

    Defined as 0.0 when either side is all ties (the denominator is 0): a constant scorer carries
    no ordering information.
    """
    n0 = concordance = ties_x = ties_y = 0
    for i, j in combinations(range(len(x)), 2):
        n0 += 1
        sx, sy = _sign(x[i] - x[j]), _sign(y[i] - y[j])
        ties_x += sx == 0
        ties_y += sy == 0
        concordance += sx * sy
    denominator = math.sqrt((n0 - ties_x) * (n0 - ties_y))
    return concordance / denominator if denominator else 0.0


def probe_metrics(scores_per_prompt: Sequence[Sequence[float]]) -> dict[str, float]:
    """Exact-order rate and mean Kendall τ_b against the intended order (docs/methods.md §3.8 [default]).

    scores_per_prompt[p] lists the RM's scores of prompt p's replies in PROBE_ORDER (best first;
    any length >= 2). exact_order_rate = share of prompts with strictly falling scores (a tie
    counts as wrong); kendall_tau = mean over prompts of τ_b(scores, intended), where the intended
    order gives the best reply the highest value.
    """
    if not scores_per_prompt:
        raise DataError("probe_metrics needs scores for at least one prompt")
    exact, taus = 0, []
    for p, scores in enumerate(scores_per_prompt):
        if len(scores) < 2 or any(math.isnan(s) for s in scores):
            raise DataError(f"prompt {p}: need >= 2 scores without NaN, got {list(scores)}")
        exact += all(a > b for a, b in zip(scores, scores[1:]))
        intended = list(range(len(scores), 0, -1))
        taus.append(kendall_tau_b(scores, intended))
    return {"exact_order_rate": exact / len(scores_per_prompt), "kendall_tau": sum(taus) / len(taus)}
