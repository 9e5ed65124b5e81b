"""One adapter per source format, each yielding the project's canonical records.

Canonical shapes (docs/methods.md §1.3):
- conversation (SFT, A1): {"messages": [{"role", "content"}...], "source"}
- preference group (A5):  {"prompt": messages, "responses": [str], "ranks": [int|None], "source"}
  (ranks: 0 = best; a chosen/rejected pair is a group of two with ranks [0, 1])
- prompt (RL, A8):        {"prompt": messages, "source"}
Adapters take (record, where) and raise DataError naming the file and record on a schema mismatch.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from rlhf.data.jsonl import iter_source
from rlhf.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def _field(record: object, key: str, where: tuple[str, int], kind: type = str):
    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object, got {type(record).__name__}", source=where[0], record=where[1])
    if key not in record:
        raise DataError(f"missing field '{key}' (fields present: {sorted(record)})", source=where[0], record=where[1])
    value = record[key]
    if not isinstance(value, kind):
        raise DataError(f"field '{key}' should be {kind.__name__}, got {type(value).__name__}",
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
        return
    messages, node = [], root
    while node is not None:
        messages.append({"role": _oasst_role(node, where), "content": node["text"]})
        replies = [r for r in node.get("replies") or [] if _usable(r)]
        ranked = [r for r in replies if r.get("rank") is not None]
        node = min(ranked, key=lambda r: r["rank"]) if ranked else (replies[0] if replies else None)
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()
    if messages:
        yield {"messages": messages, "source": "oasst"}


def oasst_ranked(record, where, languages: tuple[str, ...] | None = None) -> Iterator[dict]:
    """Preference groups: every prompter message with >= 2 ranked assistant replies (thesis §5.1.2)."""
    root = _oasst_root(record, where)
    if languages and root.get("lang") not in languages:
        return

    def walk(node: dict, history: list[dict]) -> Iterator[dict]:
        thread = history + [{"role": _oasst_role(node, where), "content": node["text"]}]
        replies = [r for r in node.get("replies") or [] if _usable(r)]
        ranked = [r for r in replies if r.get("rank") is not None]
        if thread[-1]["role"] == "user" and len(ranked) >= 2:
            yield {"prompt": thread, "responses": [r["text"] for r in ranked],
                   "ranks": [int(r["rank"]) for r in ranked], "source": "oasst"}
        for reply in replies:
            yield from walk(reply, thread)

    yield from walk(root, [])


def oasst_prompts(record, where, languages: tuple[str, ...] | None = None) -> Iterator[dict]:
    """RL prompts: threads ending with a user turn, including root-only trees (thesis §5.1.3)."""
    for group in oasst_threads(record, where, languages):
        messages = group["messages"]
        for i, message in enumerate(messages):
            if message["role"] == "user":
                yield {"prompt": messages[: i + 1], "source": "oasst"}
    root = _oasst_root(record, where)
    if not root.get("replies"):
        yield {"prompt": [{"role": "user", "content": root["text"]}], "source": "oasst"}


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
    Assistant turn on one side); they compare different contexts, so they are skipped with a warning.
    """
    chosen = parse_hh_transcript(_field(record, "chosen", where), where)
    rejected = parse_hh_transcript(_field(record, "rejected", where), where)
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise DataError("transcript does not end with an Assistant turn", source=where[0], record=where[1])
    if len(chosen) < 2 or chosen[:-1] != rejected[:-1] or chosen[-2]["role"] != "user":
        log.warning("%s, record %s: chosen and rejected do not share the dialogue before the last Assistant "
                    "turn; pair skipped", where[0], where[1])
        return
    yield {"prompt": chosen[:-1], "responses": [chosen[-1]["content"], rejected[-1]["content"]],
           "ranks": [0, 1], "source": "hh_rlhf"}


def pairs(record, where) -> Iterator[dict]:
    """Flat {"prompt", "chosen", "rejected"} with a plain-text prompt."""
    prompt = _field(record, "prompt", where, (str, list))
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    yield {"prompt": messages, "responses": [_field(record, "chosen", where), _field(record, "rejected", where)],
           "ranks": [0, 1], "source": "pairs"}


def generic(record, where, fields: dict[str, str], kind: str = "conversation") -> Iterator[dict]:
    """Any JSONL through a field mapping: {prompt: <key>, response: <key>} (and optional system)."""
    prompt = _field(record, fields["prompt"], where)
    system = record.get(fields["system"]) if "system" in fields else None
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    if kind == "prompt":
        yield {"prompt": messages, "source": "generic"}
        return
    yield {"messages": messages + [{"role": "assistant", "content": _field(record, fields["response"], where)}],
           "source": "generic"}


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


def load_records(path: str | Path, adapter: str, split: str = "train", limit: int | None = None,
                 metadata_fields: dict[str, str] | None = None, **adapter_kwargs) -> list[dict]:
    """Read a local file or hub dataset through a named adapter. With `metadata_fields`, each
    record made gets `metadata` {key: raw record[field]} (a mapped `id` also becomes its id)."""
    if adapter not in ADAPTERS:
        raise ConfigError("data.adapter", f"unknown adapter '{adapter}'; allowed: {sorted(ADAPTERS)}")
    if "languages" in adapter_kwargs and adapter_kwargs["languages"] is not None:
        adapter_kwargs["languages"] = tuple(adapter_kwargs["languages"])
    fn = ADAPTERS[adapter]
    out: list[dict] = []
    for number, record in iter_source(path, split):
        metadata = record_metadata(record, metadata_fields, (str(path), number)) if metadata_fields else None
        for made in fn(record, (str(path), number), **adapter_kwargs):
            made.setdefault("origin", f"{path} record {number}")   # named in later skips/errors
            if metadata is not None:
                made["metadata"] = dict(metadata)
                if "id" in metadata:
                    made.setdefault("id", str(metadata["id"]))
            out.append(made)
        if limit is not None and len(out) >= limit:
            return out[:limit]
    if not out:
        raise DataError(f"adapter '{adapter}' produced no records", source=str(path))
    return out
