"""Judgments JSONL: pair two systems' generations by prompt, run a judge, read judgments back.

A judgment row is {"id", "dataset", "model_a", "model_b", "winner": "a"|"b"|"tie", "judge",
"length_a", "length_b"} plus whatever the judge reports (scores, per-order verdicts). Lengths are in
characters, for the length analyses of docs/methods.md §5.6. Model-vs-model comparisons replace AlpacaEval's
reference outputs (docs/methods.md §5.3).

Files are read line by line and judgments written as they are made: pairing two generations files
keeps an 8-byte digest per prompt for its checks (same prompts, no duplicates), then walks both files
together, holding only the rows of B that come before their partner in A (none when both files are in
the same order, as `generate` writes them).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from pathlib import Path

import numpy as np

from rlhf.core.errors import ConfigError, DataError
from rlhf.data.jsonl import chunks, iter_jsonl, write_jsonl_atomic
from rlhf.data.row_keys import key_digest, repeated
from rlhf.evaluate.stats import WINNERS

JUDGMENT_KEYS = ("id", "model_a", "model_b", "winner")
GENERATION_KEYS = ("id", "dataset", "prompt", "response")


def _generation_problem(row: dict) -> str | None:
    """What is wrong with the types of a generation row (None when nothing is)."""
    if isinstance(row["id"], bool) or not isinstance(row["id"], (str, int)) or row["id"] == "":
        return f"'id' must be a non-empty string or an integer, got {row['id']!r:.60}"
    if not isinstance(row["dataset"], str) or not row["dataset"]:
        return f"'dataset' must be a non-empty string, got {row['dataset']!r:.60}"
    if not isinstance(row["prompt"], (str, list)):
        return f"'prompt' must be a string or a list of messages, got {type(row['prompt']).__name__}"
    if not isinstance(row["response"], str):
        return f"'response' must be a string, got {type(row['response']).__name__}"
    reference = row.get("reference")
    if reference is not None and (isinstance(reference, bool) or not isinstance(reference, (str, int))):
        return f"'reference' (the gold answer) must be a string or an integer, got {reference!r:.60}"
    return None


def iter_generations(path: str | Path) -> Iterator[dict]:
    """Generation rows of one file, read line by line; a row without GENERATION_KEYS, or with one of
    the wrong type, names its line."""
    rows = 0
    for line_no, row in iter_jsonl(path):
        missing = [k for k in GENERATION_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise DataError(f"generation row lacks {missing}; rows need {list(GENERATION_KEYS)} "
                            "(as written by `python -m rlhf.evaluate generate`)", source=str(path), record=line_no)
        problem = _generation_problem(row)
        if problem:
            raise DataError(problem, source=str(path), record=line_no)
        rows += 1
        yield row
    if not rows:
        raise DataError("no generation rows: the file has no rows", source=str(path))


def load_generations(path: str | Path) -> list[dict]:
    return list(iter_generations(path))


def _name_problem(row: dict) -> str | None:
    """What is wrong with a judgment's id, dataset and model names (None when nothing is)."""
    if isinstance(row["id"], bool) or not isinstance(row["id"], (str, int)) or row["id"] == "":
        return f"'id' must be a non-empty string or an integer, got {row['id']!r:.60}"
    for key in ("model_a", "model_b", "dataset"):
        if key in row and (not isinstance(row[key], str) or not row[key]):
            return f"'{key}' must be a non-empty string, got {row[key]!r:.60}"
    return None


def _judgment_key(row: dict) -> tuple[str, str, str, str]:
    return row["dataset"], str(row["id"]), row["model_a"], row["model_b"]


def _raise_repeated_judgment(path: str | Path, suspects: set[int]) -> None:
    """Read the file again, keeping the keys whose digest is in `suspects`, and name the first
    judgment that repeats an earlier one (two keys with one digest would not)."""
    seen: dict[tuple, int] = {}
    for line_no, row in iter_jsonl(path):
        row = {"dataset": "all", **row}
        key = _judgment_key(row)
        if key_digest(*key) not in suspects:
            continue
        if key in seen:
            raise DataError(f"a second judgment of ({row['dataset']}, {row['id']}) for {row['model_a']} vs "
                            f"{row['model_b']} (the first is on line {seen[key]}); each would be counted",
                            source=str(path), record=line_no)
        seen[key] = line_no


def iter_judgment_rows(path: str | Path) -> Iterator[dict]:
    """Judgment rows of one file, read line by line; `dataset` defaults to "all" when a plain file omits it.
    A judgment repeated for the same prompt and model pair would count twice: once the file is read
    (an 8-byte digest kept per row), the second is named with the line of the first."""
    digests = array("Q")   # of (dataset, id, model_a, model_b)
    for line_no, row in iter_jsonl(path):
        missing = [k for k in JUDGMENT_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise DataError(f"judgment lacks {missing}; each line needs {list(JUDGMENT_KEYS)} and usually 'dataset'",
                            source=str(path), record=line_no)
        if row["winner"] not in WINNERS:
            raise DataError(f"winner must be one of {list(WINNERS)}, got {row['winner']!r}",
                            source=str(path), record=line_no)
        problem = _name_problem(row)
        if problem:
            raise DataError(problem, source=str(path), record=line_no)
        row = {"dataset": "all", **row}
        digests.append(key_digest(*_judgment_key(row)))
        yield row
    if not digests:
        raise DataError("no judgments: the file has no rows", source=str(path))
    suspects = repeated(digests)
    if suspects:
        _raise_repeated_judgment(path, suspects)


def load_judgments(path: str | Path) -> list[dict]:
    return list(iter_judgment_rows(path))


def iter_judgments(paths: Iterable[str | Path]) -> Iterator[dict]:
    """The rows of several judgments files, one after the other, read line by line."""
    return chain.from_iterable(iter_judgment_rows(path) for path in paths)


def _prompt_key(row: dict) -> tuple[str, str]:
    return str(row["dataset"]), str(row["id"])


class _Scan:
    """One pass over one system's rows: the digest of each (dataset, id) and the `model` names seen."""

    def __init__(self, rows: Iterable[dict]):
        digests, self.models = array("Q"), set()
        for row in rows:
            digests.append(key_digest(*_prompt_key(row)))
            if "model" in row:
                self.models.add(str(row["model"]))
        self.digests = np.frombuffer(digests, dtype=np.uint64) if digests else np.zeros(0, dtype=np.uint64)
        self.unique = np.unique(self.digests)


def _keys_with(rows: Iterable[dict], digests: np.ndarray) -> list[tuple[str, str]]:
    """The (dataset, id) keys of `rows` whose digests are in `digests` (error messages only)."""
    wanted = set(digests.tolist())
    return sorted({_prompt_key(r) for r in rows if key_digest(*_prompt_key(r)) in wanted})


class GenerationPairs:
    """Two systems' generations matched on (dataset, id): checked on construction (one pass over
    each), then iterated in A's order (a second pass). `open_a()` / `open_b()` give the rows anew."""

    def __init__(self, open_a: Callable[[], Iterable[dict]], open_b: Callable[[], Iterable[dict]],
                 source: str = "generations"):
        self.open_a, self.open_b, self.source = open_a, open_b, source
        self.most_waiting = 0   # the most rows of B held at once for a later row of A, in the last pass
        self.scans = {"A": _Scan(open_a()), "B": _Scan(open_b())}
        for side, scan in self.scans.items():
            if len(scan.unique) != len(scan.digests):
                values, counts = np.unique(scan.digests, return_counts=True)
                twice = _keys_with((open_a if side == "A" else open_b)(), values[counts > 1])
                raise DataError(f"system {side} has {len(scan.digests) - len(scan.unique)} duplicate (dataset, id) "
                                f"rows (e.g. {twice[:3]}); each prompt must be answered once", source=source)
        only_a = np.setdiff1d(self.scans["A"].unique, self.scans["B"].unique, assume_unique=True)
        only_b = np.setdiff1d(self.scans["B"].unique, self.scans["A"].unique, assume_unique=True)
        if len(only_a) or len(only_b):
            keys_a, keys_b = _keys_with(open_a(), only_a), _keys_with(open_b(), only_b)
            raise DataError(f"the two systems answered different prompts: {len(only_a)} only in A "
                            f"(e.g. {keys_a[:3]}), {len(only_b)} only in B (e.g. {keys_b[:3]})", source=source)

    def model_name(self, side: str, fallback: str) -> str:
        """The single `model` named by a side's rows (two models in one file is a mix-up)."""
        names = self.scans[side].models
        if len(names) > 1:
            raise DataError(f"one generations file must hold one model's outputs, found {sorted(names)}",
                            source=f"{self.source} {side}")
        return next(iter(names)) if names else fallback

    def __iter__(self) -> Iterator[tuple[dict, dict]]:
        waiting: dict[tuple[str, str], dict] = {}   # rows of B read before their partner in A
        self.most_waiting = 0
        rows_b = iter(self.open_b())
        for row_a in self.open_a():
            key = _prompt_key(row_a)
            while key not in waiting:
                row_b = next(rows_b, None)
                if row_b is None:
                    raise DataError(f"{key} vanished from system B between two reads of it", source=self.source)
                waiting[_prompt_key(row_b)] = row_b
            row_b = waiting.pop(key)
            self.most_waiting = max(self.most_waiting, len(waiting))
            if row_a["prompt"] != row_b["prompt"]:
                raise DataError(f"prompt text differs between the systems for ({row_a['dataset']}, {row_a['id']})",
                                source=self.source)
            yield row_a, row_b


def pair_generations(rows_a: Sequence[dict], rows_b: Sequence[dict], source: str = "generations") -> list[tuple[dict, dict]]:
    """Match rows on (dataset, id). Both systems must have answered exactly the same prompts."""
    return list(GenerationPairs(lambda: rows_a, lambda: rows_b, source))


def iter_verdicts(pairs: Iterable[tuple[dict, dict]], judge, name_a: str, name_b: str,
                  batch_size: int = 16) -> Iterator[dict]:
    """One judgment row per pair, judged `batch_size` pairs at a time."""
    for chunk in chunks(pairs, batch_size):
        verdicts = judge.judge_batch([a["prompt"] for a, _ in chunk], [a["response"] for a, _ in chunk],
                                     [b["response"] for _, b in chunk])
        for (row_a, row_b), verdict in zip(chunk, verdicts):
            row = {"id": str(row_a["id"]), "dataset": row_a["dataset"], "model_a": name_a, "model_b": name_b,
                   "judge": judge.name, "length_a": len(row_a["response"]), "length_b": len(row_b["response"])}
            if "category" in row_a:
                row["category"] = row_a["category"]
            yield {**row, **verdict}


def _names(pairs: GenerationPairs, model_a: str | None, model_b: str | None, batch_size: int) -> tuple[str, str]:
    if batch_size < 1:
        raise ConfigError("evaluate.batch_size", f"must be >= 1, got {batch_size}")
    name_a = model_a or pairs.model_name("A", "model_a")
    name_b = model_b or pairs.model_name("B", "model_b")
    if name_a == name_b:
        raise ConfigError("evaluate.model_a", f"both systems are called '{name_a}'; pass distinct model names")
    return name_a, name_b


def judge_generations(rows_a: Sequence[dict], rows_b: Sequence[dict], judge, model_a: str | None = None,
                      model_b: str | None = None, batch_size: int = 16) -> list[dict]:
    """Judge every shared prompt; model names default to each file's `model` field."""
    pairs = GenerationPairs(lambda: rows_a, lambda: rows_b)
    return list(iter_verdicts(pairs, judge, *_names(pairs, model_a, model_b, batch_size), batch_size))


def judge_files(path_a: str | Path, path_b: str | Path, judge, out_path: str | Path, model_a: str | None = None,
                model_b: str | None = None, batch_size: int = 16) -> Path:
    """Judge two generations files into a judgments JSONL, line by line, published when complete."""
    pairs = GenerationPairs(lambda: iter_generations(path_a), lambda: iter_generations(path_b),
                            source=f"generations {path_a} (A) and {path_b} (B)")
    names = _names(pairs, model_a, model_b, batch_size)
    return write_jsonl_atomic(out_path, iter_verdicts(pairs, judge, *names, batch_size))
