"""One adapter per source format, each yielding the project's canonical records.

Canonical shapes (docs/methods.md §1.3):
- conversation (SFT, A1): {"messages": [{"role", "content"}...], "source"}
- preference group (A5):  {"prompt": messages, "responses": [str], "ranks": [int|None], "source"}
  (ranks: 0 = best; a chosen/rejected pair is a group of two with ranks [0, 1])
- prompt (RL, A8):        {"prompt": messages, "source"}
Adapters take (record, where) and raise DataError naming the file and record on a schema mismatch.
A record that fits the schema but gives nothing to learn from raises SkipRecord with a named reason;
load_records counts it (SourceTally) and logs the counts, so no record is ever dropped unseen.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rlhf.data.jsonl import iter_source
from rlhf.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

HH_DIFFERENT_CONTEXTS = "chosen and rejected do not share the dialogue before the last Assistant turn"
OASST_NO_THREAD = "no assistant reply to follow from the root"
OASST_NO_GROUP = "no prompter message with 2 or more ranked assistant replies"


def language_not_kept(language: object) -> str:
    return f"language {language!r} not in data.sources.languages"


class SkipRecord(Exception):
    """Raised by an adapter for a well-formed record it makes no example of; `reason` is the counted name."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class SourceTally:
    """What one pass over a source did: every record read is parsed (gave >= 1 example) or skipped
    under a reason, so read == parsed + sum(skipped.values())."""

    source: str
    read: int = 0
    parsed: int = 0
    examples: int = 0
    skipped: Counter = field(default_factory=Counter)
    """reason -> records skipped for it."""
    skipped_records: dict = field(default_factory=dict)
    """reason -> the numbers of its first SHOWN skipped records (for the log line)."""

    SHOWN = 3

    def skip(self, reason: str, record: int) -> None:
        self.skipped[reason] += 1
        shown = self.skipped_records.setdefault(reason, [])
        if len(shown) < self.SHOWN:
            shown.append(record)

    def describe(self) -> str:
        """'N records: P parsed into E examples, S skipped (<reason>: n, records a, b, c; ...)'."""
        text = f"{self.read} records: {self.parsed} parsed into {self.examples} examples"
        if self.skipped:
            reasons = []
            for reason, n in sorted(self.skipped.items()):
                shown = ", ".join(map(str, self.skipped_records[reason])) + (", ..." if n > self.SHOWN else "")
                reasons.append(f"{reason}: {n}, record{'s' if n > 1 else ''} {shown}")
            text += f", {sum(self.skipped.values())} skipped ({'; '.join(reasons)})"
        return text


def _field(record: object, key: str, where: tuple[str, int], kind: type = str):
    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object, got {type(record).__name__}", source=where[0], record=where[1])
    if key not in record:
        raise DataError(f"missing field '{key}' (fields present: {sorted(record)})", source=where[0], record=where[1])
    value = record[key]
    if not isinstance(value, kind):
        expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise DataError(f"field '{key}' should be {expected}, got {type(value).__name__}",
                        source=where[0], record=where[1])
    return value


def _qa(question: str, answer: str, source: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            "source": source}


def alpaca(record, where) -> Iterator[dict]:
    """Alpaca: instruction (+ optional input) -> output (thesis §5.1.1)."""
    instruction = _field(record, "instruction", where)
    extra = record.get("input") or ""
    question = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    yield _qa(question, _field(record, "output", where), "alpaca")


def dolly(record, where) -> Iterator[dict]:
    """Dolly-15k: the `context` column is ignored and all categories are treated alike (thesis §5.1.1)."""
    yield _qa(_field(record, "instruction", where), _field(record, "response", where), "dolly")


def gsm8k(record, where) -> Iterator[dict]:
    """GSM8K: question -> natural-language solution; calculator annotations <<a*b=c>> are removed."""
    answer = re.sub(r"<<[^>]*>>", "", _field(record, "answer", where))
    yield _qa(_field(record, "question", where), answer, "gsm8k")


def _oasst_root(record, where) -> dict:
    """Both OASST export formats: the tree format nests the root under `prompt`."""
    root = record.get("prompt") if isinstance(record, dict) and isinstance(record.get("prompt"), dict) else record
    _field(root, "text", where)
    _field(root, "role", where)
    return root


def _oasst_role(message: dict, where) -> str:
    roles = {"prompter": "user", "assistant": "assistant"}
    if message.get("role") not in roles:
        raise DataError(f"OASST role '{message.get('role')}' is not prompter/assistant", source=where[0], record=where[1])
    return roles[message["role"]]


def _usable(message: dict) -> bool:
    return not message.get("deleted") and message.get("review_result", True) is not False


def oasst_threads(record, where, languages: tuple[str, ...] | None = None) -> Iterator[dict]:
    """SFT threads that follow the top-ranked reply at each step (thesis §5.1.1).

    At each node the reply with the lowest rank is followed (unranked replies only when no
    sibling is ranked); every thread that reaches an assistant leaf is emitted once.
    """
    root = _oasst_root(record, where)
    if languages and root.get("lang") not in languages:
        raise SkipRecord(language_not_kept(root.get("lang")))
    messages, node = [], root
    while node is not None:
        messages.append({"role": _oasst_role(node, where), "content": node["text"]})
        replies = [r for r in node.get("replies") or [] if _usable(r)]
        ranked = [r for r in replies if r.get("rank") is not None]
        node = min(ranked, key=lambda r: r["rank"]) if ranked else (replies[0] if replies else None)
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()
    if not messages:
        raise SkipRecord(OASST_NO_THREAD)
    yield {"messages": messages, "source": "oasst"}


def oasst_ranked(record, where, languages: tuple[str, ...] | None = None) -> Iterator[dict]:
    """Preference groups: every prompter message with >= 2 ranked assistant replies (thesis §5.1.2)."""
    root = _oasst_root(record, where)
    if languages and root.get("lang") not in languages:
        raise SkipRecord(language_not_kept(root.get("lang")))

    def walk(node: dict, history: list[dict]) -> Iterator[dict]:
        thread = history + [{"role": _oasst_role(node, where), "content": node["text"]}]
        replies = [r for r in node.get("replies") or [] if _usable(r)]
        ranked = [r for r in replies if r.get("rank") is not None]
        if thread[-1]["role"] == "user" and len(ranked) >= 2:
            yield {"prompt": thread, "responses": [r["text"] for r in ranked],
                   "ranks": [int(r["rank"]) for r in ranked], "source": "oasst"}
        for reply in replies:
            yield from walk(reply, thread)

    made = 0
    for group in walk(root, []):
        made += 1
        yield group
    if not made:
        raise SkipRecord(OASST_NO_GROUP)


def oasst_prompts(record, where, languages: tuple[str, ...] | None = None) -> Iterator[dict]:
    """RL prompts: threads ending with a user turn, including trees with no usable reply, whose
    root alone is the prompt (thesis §5.1.3)."""
    try:
        threads = list(oasst_threads(record, where, languages))
    except SkipRecord as skip:
        if skip.reason != OASST_NO_THREAD:
            raise
        root = _oasst_root(record, where)
        yield {"prompt": [{"role": "user", "content": root["text"]}], "source": "oasst"}
        return
    for group in threads:
        messages = group["messages"]
        for i, message in enumerate(messages):
            if message["role"] == "user":
                yield {"prompt": messages[: i + 1], "source": "oasst"}


HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def parse_hh_transcript(text: str, where) -> list[dict]:
    """`\\n\\nHuman: ...\\n\\nAssistant: ...` -> messages."""
    parts = HH_TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        raise DataError("not an HH-RLHF transcript (expected '\\n\\nHuman: ...' turns)", source=where[0], record=where[1])
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[r], "content": c} for r, c in zip(parts[1::2], parts[2::2])]


def hh_rlhf(record, where) -> Iterator[dict]:
    """HH-RLHF: chosen and rejected share the dialogue up to the last assistant turn.

    A few real pairs break that (3 of the 1,800 harmless-base dev pairs have an extra or doubled
    Assistant turn on one side, docs/data.md); they compare different contexts, so they are skipped.
    """
    chosen = parse_hh_transcript(_field(record, "chosen", where), where)
    rejected = parse_hh_transcript(_field(record, "rejected", where), where)
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise DataError("transcript does not end with an Assistant turn", source=where[0], record=where[1])
    if len(chosen) < 2 or chosen[:-1] != rejected[:-1] or chosen[-2]["role"] != "user":
        raise SkipRecord(HH_DIFFERENT_CONTEXTS)
    yield {"prompt": chosen[:-1], "responses": [chosen[-1]["content"], rejected[-1]["content"]],
           "ranks": [0, 1], "source": "hh_rlhf"}


def pairs(record, where) -> Iterator[dict]:
    """Flat {"prompt", "chosen", "rejected"} with a plain-text prompt."""
    prompt = _field(record, "prompt", where, (str, list))
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    yield {"prompt": messages, "responses": [_field(record, "chosen", where), _field(record, "rejected", where)],
           "ranks": [0, 1], "source": "pairs"}


def generic(record, where, fields: dict[str, str], kind: str = "conversation") -> Iterator[dict]:
    """Any JSONL through a field mapping: {prompt: <key>, response: <key>} (and optional system). The
    prompt is a string (one user turn) or a conversation: a list of {role, content} messages ending
    with a user turn (a multi-turn RL prompt, e.g. an HH-RLHF dialogue before its last reply)."""
    prompt = _field(record, fields["prompt"], where, (str, list))
    system = record.get(fields["system"]) if "system" in fields else None
    turns = _conversation(prompt, fields["prompt"], where) if isinstance(prompt, list) else [
        {"role": "user", "content": prompt}]
    messages = ([{"role": "system", "content": system}] if system else []) + turns
    if kind == "prompt":
        yield {"prompt": messages, "source": "generic"}
        return
    yield {"messages": messages + [{"role": "assistant", "content": _field(record, fields["response"], where)}],
           "source": "generic"}


def _conversation(turns: list, key: str, where) -> list[dict]:
    for i, m in enumerate(turns):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
            raise DataError(f"field '{key}'[{i}] needs role system/user/assistant and string content",
                            source=where[0], record=where[1])
    if not turns or turns[-1]["role"] != "user":
        raise DataError(f"field '{key}': a conversation prompt must end with a user turn", source=where[0], record=where[1])
    return list(turns)


def messages(record, where) -> Iterator[dict]:
    """Already canonical `{"messages": [...]}` records (the pipeline's own artifacts)."""
    msgs = _field(record, "messages", where, list)
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
            raise DataError(f"messages[{i}] needs role system/user/assistant and string content", source=where[0], record=where[1])
    yield {"messages": msgs, "source": record.get("source", "messages")}


def grouped(record, where) -> Iterator[dict]:
    """Already canonical preference groups `{"prompt", "responses", "ranks"}`."""
    prompt = _field(record, "prompt", where, list)
    responses = _field(record, "responses", where, list)
    ranks = _field(record, "ranks", where, list)
    if len(responses) != len(ranks):
        raise DataError(f"{len(responses)} responses but {len(ranks)} ranks", source=where[0], record=where[1])
    yield {"prompt": prompt, "responses": responses, "ranks": ranks, "source": record.get("source", "grouped")}


ADAPTERS: dict[str, Callable] = {
    "alpaca": alpaca, "dolly": dolly, "gsm8k": gsm8k, "oasst_threads": oasst_threads,
    "oasst_ranked": oasst_ranked, "oasst_prompts": oasst_prompts, "hh_rlhf": hh_rlhf, "pairs": pairs,
    "generic": generic, "messages": messages, "grouped": grouped,
}


def record_metadata(record: object, metadata_fields: dict[str, str], where: tuple[str, int]) -> dict:
    """{key: record[field]} for each `key: field` of the mapping; a missing field names the file and record."""
    out = {}
    for key, field in metadata_fields.items():
        if not isinstance(record, dict) or field not in record:
            present = sorted(record) if isinstance(record, dict) else type(record).__name__
            raise DataError(f"metadata field '{key}' is read from '{field}', which this record lacks "
                            f"(fields present: {present}); map '{key}' to one of them",
                            source=where[0], record=where[1])
        out[key] = record[field]
    return out


def made_from(fn: Callable, record: object, where: tuple[str, int], **adapter_kwargs) -> list[dict]:
    """The examples an adapter makes of one record; [] raises SkipRecord, so an adapter that makes
    nothing without naming why is still counted, under its own name."""
    made = list(fn(record, where, **adapter_kwargs))
    if not made:
        raise SkipRecord(f"adapter '{fn.__name__}' made no example")
    return made


def load_records(path: str | Path, adapter: str, split: str = "train", limit: int | None = None,
                 metadata_fields: dict[str, str] | None = None, tally: SourceTally | None = None,
                 **adapter_kwargs) -> list[dict]:
    """Read a local file or hub dataset through a named adapter. With `metadata_fields`, each
    record made gets `metadata` {key: raw record[field]} (a mapped `id` also becomes its id).

    Skipped records are counted by reason in `tally` (when given) and logged once per source."""
    if adapter not in ADAPTERS:
        raise ConfigError("data.adapter", f"unknown adapter '{adapter}'; allowed: {sorted(ADAPTERS)}")
    if "languages" in adapter_kwargs and adapter_kwargs["languages"] is not None:
        adapter_kwargs["languages"] = tuple(adapter_kwargs["languages"])
    fn = ADAPTERS[adapter]
    tally = SourceTally(str(path)) if tally is None else tally
    out: list[dict] = []
    for number, record in iter_source(path, split):
        tally.read += 1
        metadata = record_metadata(record, metadata_fields, (str(path), number)) if metadata_fields else None
        try:
            made = made_from(fn, record, (str(path), number), **adapter_kwargs)
        except SkipRecord as skip:
            tally.skip(skip.reason, number)
            continue
        tally.parsed += 1
        tally.examples += len(made)
        for example in made:
            example.setdefault("origin", f"{path} record {number}")   # named in later skips/errors
            if metadata is not None:
                example["metadata"] = dict(metadata)
                if "id" in metadata:
                    example.setdefault("id", str(metadata["id"]))
        out.extend(made)
        if limit is not None and len(out) >= limit:
            break
    if tally.skipped:
        log.warning("%s (adapter %s): %s", path, adapter, tally.describe())
    if not out:
        raise DataError(f"adapter '{adapter}' produced no records ({tally.describe()})", source=str(path))
    if limit is not None and len(out) > limit:
        tally.examples -= len(out) - limit
        out = out[:limit]
    return out
