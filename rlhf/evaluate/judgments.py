"""Judgments JSONL: pair two systems' generations by prompt, run a judge, read judgments back.

A judgment row is {"id", "dataset", "model_a", "model_b", "winner": "a"|"b"|"tie", "judge",
"length_a", "length_b"} plus whatever the judge reports (scores, per-order verdicts). Lengths are in
characters, for the length analyses of docs/methods.md §5.6. Model-vs-model comparisons replace AlpacaEval's
reference outputs (docs/methods.md §5.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rlhf.core.errors import ConfigError, DataError
from rlhf.data.jsonl import iter_jsonl, write_jsonl_atomic
from rlhf.evaluate.stats import WINNERS

JUDGMENT_KEYS = ("id", "model_a", "model_b", "winner")
GENERATION_KEYS = ("id", "dataset", "prompt", "response")


def load_generations(path: str | Path) -> list[dict]:
    rows = []
    for line_no, row in iter_jsonl(path):
        missing = [k for k in GENERATION_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise DataError(f"generation row lacks {missing}; rows need {list(GENERATION_KEYS)} "
                            "(as written by `python -m rlhf.evaluate generate`)", source=str(path), record=line_no)
        rows.append(row)
    return rows


def load_judgments(path: str | Path) -> list[dict]:
    """Judgment rows; `dataset` defaults to "all" when a plain file omits it."""
    rows = []
    for line_no, row in iter_jsonl(path):
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
    for side, rows, keys in (("A", rows_a, keys_a), ("B", rows_b, by_key_b)):
        if len(keys) != len(rows):
            raise DataError(f"system {side} has {len(rows) - len(keys)} duplicate (dataset, id) rows; "
                            "each prompt must be answered once", source=source)
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


def model_name(rows: Sequence[dict], fallback: str, source: str) -> str:
    """The single `model` named by a generations file (two models in one file is a mix-up)."""
    names = {str(r["model"]) for r in rows if "model" in r}
    if len(names) > 1:
        raise DataError(f"one generations file must hold one model's outputs, found {sorted(names)}", source=source)
    return names.pop() if names else fallback


def judge_generations(rows_a: Sequence[dict], rows_b: Sequence[dict], judge, model_a: str | None = None,
                      model_b: str | None = None, batch_size: int = 16) -> list[dict]:
    """Judge every shared prompt; model names default to each file's `model` field."""
    if batch_size < 1:
        raise ConfigError("evaluate.batch_size", f"must be >= 1, got {batch_size}")
    pairs = pair_generations(rows_a, rows_b)
    name_a = model_a or model_name(rows_a, "model_a", "generations A")
    name_b = model_b or model_name(rows_b, "model_b", "generations B")
    if name_a == name_b:
        raise ConfigError("evaluate.model_a", f"both systems are called '{name_a}'; pass distinct model names")
    judgments = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        verdicts = judge.judge_batch([a["prompt"] for a, _ in chunk], [a["response"] for a, _ in chunk],
                                     [b["response"] for _, b in chunk])
        for (row_a, row_b), verdict in zip(chunk, verdicts):
            row = {"id": str(row_a["id"]), "dataset": row_a["dataset"], "model_a": name_a, "model_b": name_b,
                   "judge": judge.name, "length_a": len(row_a["response"]), "length_b": len(row_b["response"])}
            if "category" in row_a:
                row["category"] = row_a["category"]
            judgments.append({**row, **verdict})
    return judgments


def judge_files(path_a: str | Path, path_b: str | Path, judge, out_path: str | Path, model_a: str | None = None,
                model_b: str | None = None, batch_size: int = 16) -> Path:
    """Judge two generations files and write the judgments JSONL atomically."""
    rows = judge_generations(load_generations(path_a), load_generations(path_b), judge, model_a, model_b, batch_size)
    return write_jsonl_atomic(out_path, rows)
