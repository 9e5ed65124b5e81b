"""Judgments JSONL: pair two systems' generations by prompt, run a judge, read judgments back.

A judgment row is {"id", "dataset", "model_a", "model_b", "winner": "a"|"b"|"tie", "judge", ...}
plus whatever the judge reports (scores, per-order verdicts). Model-vs-model comparisons replace
AlpacaEval's reference outputs (METHODS §5.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rlhf.errors import DataError
from rlhf.evaluate.jsonl import read_jsonl
from rlhf.evaluate.stats import WINNERS

JUDGMENT_KEYS = ("id", "model_a", "model_b", "winner")
GENERATION_KEYS = ("id", "dataset", "prompt", "response")


def load_generations(path: str | Path) -> list[dict]:
    rows = []
    for line_no, row in read_jsonl(path):
        missing = [k for k in GENERATION_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise DataError(f"generation row lacks {missing}; rows need {list(GENERATION_KEYS)} "
                            "(as written by `python -m rlhf.evaluate generate`)", source=str(path), record=line_no)
        rows.append(row)
    return rows


def load_judgments(path: str | Path) -> list[dict]:
    """Judgment rows; `dataset` defaults to "all" when a plain file omits it."""
    rows = []
    for line_no, row in read_jsonl(path):
        missing = [k for k in JUDGMENT_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise DataError(f"judgment lacks {missing}; each line needs {list(JUDGMENT_KEYS)} and usually 'dataset'",
                            source=str(path), record=line_no)
        if row["winner"] not in WINNERS:
            raise DataError(f"winner must be one of {list(WINNERS)}, got {row['winner']!r}",
                            source=str(path), record=line_no)
        rows.append({"dataset": "all", **row})
    return rows


def pair_generations(rows_a: Sequence[dict], rows_b: Sequence[dict], source: str = "generations") -> list[tuple[dict, dict]]:
    """Match rows on (dataset, id). Both systems must have answered exactly the same prompts."""
    by_key_b = {(r["dataset"], str(r["id"])): r for r in rows_b}
    keys_a = {(r["dataset"], str(r["id"])) for r in rows_a}
    only_a, only_b = keys_a - by_key_b.keys(), by_key_b.keys() - keys_a
    if only_a or only_b:
        raise DataError(f"the two systems answered different prompts: {len(only_a)} only in A "
                        f"(e.g. {sorted(only_a)[:3]}), {len(only_b)} only in B (e.g. {sorted(only_b)[:3]})", source=source)
    pairs = []
    for row_a in rows_a:
        row_b = by_key_b[(row_a["dataset"], str(row_a["id"]))]
        if row_a["prompt"] != row_b["prompt"]:
            raise DataError(f"prompt text differs between the systems for ({row_a['dataset']}, {row_a['id']})", source=source)
        pairs.append((row_a, row_b))
    return pairs


def judge_generations(rows_a: Sequence[dict], rows_b: Sequence[dict], judge, model_a: str | None = None,
                      model_b: str | None = None, batch_size: int = 16) -> list[dict]:
    """Judge every shared prompt; model names default to each file's `model_id`."""
    pairs = pair_generations(rows_a, rows_b)
    name_a = model_a or (rows_a[0].get("model_id", "model_a") if rows_a else "model_a")
    name_b = model_b or (rows_b[0].get("model_id", "model_b") if rows_b else "model_b")
    judgments = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        verdicts = judge.judge_batch([a["prompt"] for a, _ in chunk], [a["response"] for a, _ in chunk],
                                     [b["response"] for _, b in chunk])
        for (row_a, _), verdict in zip(chunk, verdicts):
            row = {"id": str(row_a["id"]), "dataset": row_a["dataset"], "model_a": name_a, "model_b": name_b,
                   "judge": judge.name}
            if "category" in row_a:
                row["category"] = row_a["category"]
            judgments.append({**row, **verdict})
    return judgments
