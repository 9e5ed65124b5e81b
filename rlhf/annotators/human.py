"""Round trip to human labellers: write K responses per prompt to a JSONL file, read the ranks back.

This is the A3 -> A4 hand-off of docs/methods.md §1.3 done by people, as in ICE-GRT (5 responses per
prompt, ranked; ICE-GRT §3.2) and the thesis' ranking study (ties allowed;
thesis §5.5.2, docs/methods.md §5.8).

File format, one JSON object per line:
    {"prompt_id": str, "prompt": [messages], "responses": [{"response_id": "r0", "text": str}, ...],
     "ranks": null}
The labeller replaces null with either a list of ranks in the order the responses are listed, or an
object {response_id: rank}. Ranks are 1-based (1 = best, K = worst), the convention of the seeds'
tables and of people; `rank_base=0` reads files that use 0..K-1 instead. Whatever the file uses,
`import_rankings` returns 0-based ranks indexed by the original response position (r0, r1, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rlhf.annotators.base import check_prompt, ranks_from_scores
from rlhf.core.errors import DataError
from rlhf.data.jsonl import iter_jsonl, write_jsonl_atomic


def response_id(index: int) -> str:
    return f"r{index}"


@dataclass(frozen=True)
class LabelledItem:
    prompt_id: str
    prompt: list[dict]
    responses: list[str]
    ranks: list[int] | None  # 0-based, by original response position; None = not ranked yet
    line: int


def export_labelling_file(path: str | Path, items: list[dict]) -> Path:
    """Write items {"prompt_id", "prompt", "responses": [str]} as a labelling file.

    Published in one rename (write_jsonl_atomic), so a crash never leaves half a file.
    """
    path = Path(path)
    seen: set[str] = set()
    records = []
    for i, item in enumerate(items):

        def fail(message: str) -> DataError:
            return DataError(f"export item {i}: {message}", source=str(path))

        for key in ("prompt_id", "prompt", "responses"):
            if key not in item:
                raise fail(f"no '{key}'; items need prompt_id, prompt and responses")
        prompt_id = str(item["prompt_id"])
        if prompt_id in seen:
            raise fail(f"prompt_id {prompt_id!r} appears twice; ids must be unique")
        seen.add(prompt_id)
        try:
            check_prompt(item["prompt"])
        except DataError as err:
            raise fail(f"prompt_id {prompt_id!r}: {err}") from err
        responses = item["responses"]
        if not isinstance(responses, list) or not responses or not all(isinstance(r, str) for r in responses):
            raise fail(f"prompt_id {prompt_id!r}: responses must be a non-empty list of str")
        record = {
            "prompt_id": prompt_id,
            "prompt": item["prompt"],
            "responses": [{"response_id": response_id(k), "text": t} for k, t in enumerate(item["responses"])],
            "ranks": None,
        }
        records.append(record)
    return write_jsonl_atomic(path, records)


def read_labelling_file(
    path: str | Path,
    *,
    allow_ties: bool = False,
    rank_base: int = 1,
    on_unranked: str = "error",
) -> list[LabelledItem]:
    """Parse and validate a filled-in labelling file; every problem names the file and line.

    on_unranked: what to do with lines whose ranks are still null: "error" (default), "skip", or
    "keep" (they come back with ranks=None; used to look prompts up before labelling is finished).
    """
    if rank_base not in (0, 1):
        raise ValueError(f"rank_base must be 0 or 1, got {rank_base!r}")
    if on_unranked not in ("error", "skip", "keep"):
        raise ValueError(f"on_unranked must be 'error', 'skip' or 'keep', got {on_unranked!r}")
    source = str(path)
    items: list[LabelledItem] = []
    seen: dict[str, int] = {}
    for line_no, record in iter_jsonl(path):
        item = parse_record(record, source, line_no, allow_ties, rank_base)
        if item.prompt_id in seen:
            raise DataError(
                f"prompt_id {item.prompt_id!r} already appeared on line {seen[item.prompt_id]}",
                source=source,
                record=line_no,
            )
        seen[item.prompt_id] = line_no
        items.append(item)
    if not items:
        raise DataError("no labelled prompts: the file is empty (export one with export_labelling_file)",
                        source=source)
    return select_ranked(items, on_unranked, source)


def select_ranked(items: list[LabelledItem], on_unranked: str, source: str) -> list[LabelledItem]:
    if on_unranked == "keep":
        return items
    for item in items:
        if item.ranks is None and on_unranked == "error":
            raise DataError(
                f"prompt_id {item.prompt_id!r} is not ranked ('ranks' is null); fill it in or "
                "import with on_unranked='skip'",
                source=source,
                record=item.line,
            )
    return [item for item in items if item.ranks is not None]


def parse_record(record, source: str, line_no: int, allow_ties: bool, rank_base: int) -> LabelledItem:
    def fail(message: str) -> DataError:
        return DataError(message, source=source, record=line_no)

    if not isinstance(record, dict):
        raise fail(f"expected a JSON object, got {type(record).__name__}")
    prompt_id = record.get("prompt_id")
    if not isinstance(prompt_id, str) or not prompt_id:
        raise fail("missing 'prompt_id' (a non-empty string)")
    prompt = record.get("prompt")
    try:
        check_prompt(prompt)
    except DataError as err:
        raise fail(f"prompt_id {prompt_id!r}: {err}") from err
    listed = record.get("responses")
    if not isinstance(listed, list) or not listed:
        raise fail(f"prompt_id {prompt_id!r}: 'responses' must be a non-empty list")
    k = len(listed)
    expected_ids = [response_id(i) for i in range(k)]
    position: dict[str, int] = {}
    texts: dict[str, str] = {}
    for entry in listed:
        if not isinstance(entry, dict) or "response_id" not in entry or not isinstance(entry.get("text"), str):
            raise fail(f"prompt_id {prompt_id!r}: each response needs 'response_id' and a str 'text', got {entry!r}")
        rid = entry["response_id"]
        if rid not in expected_ids:
            raise fail(f"prompt_id {prompt_id!r}: unknown response_id {rid!r}; expected {expected_ids}")
        if rid in position:
            raise fail(f"prompt_id {prompt_id!r}: response_id {rid!r} listed twice")
        position[rid] = len(position)
        texts[rid] = entry["text"]
    responses = [texts[rid] for rid in expected_ids]

    raw = record.get("ranks", None)
    if raw is None:
        return LabelledItem(prompt_id, prompt, responses, None, line_no)
    if isinstance(raw, list):
        if len(raw) != k:
            raise fail(f"prompt_id {prompt_id!r}: 'ranks' has {len(raw)} entries for {k} responses")
        listed_ids = [entry["response_id"] for entry in listed]
        by_id = dict(zip(listed_ids, raw))
    elif isinstance(raw, dict):
        missing = [rid for rid in expected_ids if rid not in raw]
        unknown = [rid for rid in raw if rid not in expected_ids]
        if unknown:
            raise fail(f"prompt_id {prompt_id!r}: 'ranks' names unknown response ids {unknown}; expected {expected_ids}")
        if missing:
            raise fail(f"prompt_id {prompt_id!r}: 'ranks' has no rank for response ids {missing}")
        by_id = raw
    else:
        raise fail(f"prompt_id {prompt_id!r}: 'ranks' must be null, a list or an object, got {type(raw).__name__}")

    lo, hi = rank_base, rank_base + k - 1
    for rid in expected_ids:
        value = by_id[rid]
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"prompt_id {prompt_id!r}: rank of {rid} must be an integer, got {value!r}")
        if not lo <= value <= hi:
            hint = "" if rank_base == 0 else " (0-based files need rank_base=0)"
            raise fail(f"prompt_id {prompt_id!r}: rank {value} of {rid} is outside {lo}..{hi}{hint}")
    ranks = [by_id[rid] - rank_base for rid in expected_ids]
    if not allow_ties:
        duplicated = sorted({r + rank_base for r in ranks if ranks.count(r) > 1})
        if duplicated:
            raise fail(f"prompt_id {prompt_id!r}: rank(s) {duplicated} given to more than one response; "
                       "each response needs its own rank unless allow_ties=True")
    return LabelledItem(prompt_id, prompt, responses, ranks, line_no)


def import_rankings(
    path: str | Path,
    expected: Mapping[str, int] | None = None,
    *,
    allow_ties: bool = False,
    rank_base: int = 1,
    on_unranked: str = "error",
) -> dict[str, list[int]]:
    """Read ranks back as {prompt_id: 0-based ranks by original response position}.

    expected: {prompt_id: number of responses} as exported; then every exported id must come back,
    no other id may appear, and each must keep its number of responses.
    """
    source = str(path)
    items = read_labelling_file(path, allow_ties=allow_ties, rank_base=rank_base, on_unranked="keep")
    if expected is not None:
        for item in items:
            if item.prompt_id not in expected:
                raise DataError(f"unknown prompt_id {item.prompt_id!r}; it was not exported", source=source, record=item.line)
            if len(item.responses) != expected[item.prompt_id]:
                raise DataError(
                    f"prompt_id {item.prompt_id!r} has {len(item.responses)} responses; "
                    f"{expected[item.prompt_id]} were exported",
                    source=source,
                    record=item.line,
                )
        missing = sorted(set(expected) - {item.prompt_id for item in items})
        if missing:
            raise DataError(f"prompt_id(s) {missing} were exported but are missing from the file", source=source)
    return {item.prompt_id: item.ranks for item in select_ranked(items, on_unranked, source)}


class HumanAnnotator:
    """Replays ranks a person wrote into a labelling file; rank() finds the prompt by its messages."""

    name = "human"

    def __init__(self, items: list[LabelledItem], source: str | None = None):
        self.by_prompt = {prompt_key(item.prompt): item for item in items}
        self.source = source

    @classmethod
    def from_file(cls, path: str | Path, *, allow_ties: bool = True, rank_base: int = 1, on_unranked: str = "skip"):
        items = read_labelling_file(path, allow_ties=allow_ties, rank_base=rank_base, on_unranked=on_unranked)
        return cls(items, source=str(path))

    def rank(self, prompt: list[dict], responses: list[str]) -> list[int]:
        """The file's ranks for these responses, re-ranked among themselves (any order or subset)."""
        item = self.by_prompt.get(prompt_key(prompt))
        if item is None or item.ranks is None:
            raise DataError(
                f"no human ranking for prompt {prompt[-1]['content'][:60]!r}; export it and fill in its ranks",
                source=self.source,
            )
        position = {text: i for i, text in enumerate(item.responses)}
        unknown = [r[:40] for r in responses if r not in position]
        if unknown:
            raise DataError(
                f"prompt_id {item.prompt_id!r}: responses not in the labelling file: {unknown}",
                source=self.source,
                record=item.line,
            )
        return ranks_from_scores([-item.ranks[position[r]] for r in responses])

    def labels(self, prompt: list[dict], response: str) -> dict[str, float]:
        raise NotImplementedError("human labelling files hold ranks only, not per-criterion labels")


def prompt_key(prompt: list[dict]) -> str:
    return json.dumps([[m["role"], m["content"]] for m in prompt], ensure_ascii=False)
