"""Loaders that turn each evaluation prompt set into records {id, dataset, prompt: messages}.

The shared data kit keeps every set in its source's native schema (shared/data/README.md), so each
format gets its own small adapter. Optional record keys: `category` (per-category breakdowns,
docs/methods.md §5.5), `reference` (GSM8K gold answer), `followups` (later MT-bench user turns).
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path

from rlhf.core.errors import ConfigError, DataError
from rlhf.evaluate.gsm8k import gold_answer
from rlhf.data.jsonl import iter_jsonl
from rlhf.data.row_keys import key_digest, repeated
from rlhf.data.sources import record_metadata

ROLES = ("system", "user", "assistant")


def _require(obj: object, key: str, kind: type, path: Path, line_no: int, expected: str):
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object with {expected}, got {type(obj).__name__}",
                        source=str(path), record=line_no)
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, (str, list)) and not value):
        raise DataError(f"key '{key}' must be a non-empty {kind.__name__} ({expected})",
                        source=str(path), record=line_no)
    return value


def user_prompt(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def validate_messages(messages: object, path: Path, line_no: int) -> list[dict]:
    """A prompt is a list of {role, content} messages ending with a user turn (project convention)."""
    ok = isinstance(messages, list) and messages and all(
        isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in messages
    )
    if not ok or messages[-1]["role"] != "user":
        raise DataError("prompt must be a non-empty list of {role: system|user|assistant, content: str} "
                        "ending with a user message", source=str(path), record=line_no)
    return messages


def load_turns_questions(path: str | Path, dataset: str, both_turns: bool = False) -> list[dict]:
    """FastChat question files (MT-bench, Vicuna bench): `question_id`, `category`, `turns`.

    MT-bench's second turn depends on the model's own first answer, so it becomes a `followups`
    entry that generation answers after the first turn, not a prompt of its own.
    """
    path = Path(path)
    records = []
    for line_no, obj in iter_jsonl(path):
        turns = _require(obj, "turns", list, path, line_no, "a list of user turns")
        if "question_id" not in obj or not all(isinstance(t, str) and t for t in turns):
            raise DataError("needs 'question_id' and 'turns' as a list of non-empty strings",
                            source=str(path), record=line_no)
        record = {"id": str(obj["question_id"]), "dataset": dataset, "prompt": user_prompt(turns[0])}
        if obj.get("category"):
            record["category"] = obj["category"]
        if both_turns and len(turns) > 1:
            record["followups"] = list(turns[1:])
        records.append(record)
    return records


def load_mt_bench(path: str | Path, both_turns: bool = False) -> list[dict]:
    return load_turns_questions(path, "mt_bench", both_turns)


def load_vicuna_bench(path: str | Path) -> list[dict]:
    return load_turns_questions(path, "vicuna")


def load_koala(path: str | Path) -> list[dict]:
    path = Path(path)
    records = []
    for line_no, obj in iter_jsonl(path):
        text = _require(obj, "prompt", str, path, line_no, "the user prompt")
        record_id = _require(obj, "id", str, path, line_no, "the record id")
        records.append({"id": record_id, "dataset": "koala", "prompt": user_prompt(text)})
    return records


def load_user_oriented(path: str | Path) -> list[dict]:
    """Self-Instruct user-oriented set: instruction, plus the first instance's input when non-empty
    (the same joining AlpacaEval uses for these prompts)."""
    path = Path(path)
    records = []
    for line_no, obj in iter_jsonl(path):
        instruction = _require(obj, "instruction", str, path, line_no, "the task instruction")
        record_id = _require(obj, "id", str, path, line_no, "the record id")
        instances = obj.get("instances") or [{}]
        extra = instances[0].get("input", "") if isinstance(instances[0], dict) else ""
        text = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        record = {"id": record_id, "dataset": "user_oriented", "prompt": user_prompt(text)}
        if obj.get("motivation_app"):
            record["category"] = obj["motivation_app"]
        records.append(record)
    return records


def load_gsm8k(path: str | Path, instruction: str | None = None) -> list[dict]:
    """GSM8K test: the question (optionally after a zero-shot instruction, docs/methods.md §5.9) and the
    gold final number from the answer's `#### <number>` line as `reference`."""
    path = Path(path)
    records = []
    for index, (line_no, obj) in enumerate(iter_jsonl(path)):
        question = _require(obj, "question", str, path, line_no, "the word problem")
        answer = _require(obj, "answer", str, path, line_no, "the worked answer ending in '#### <number>'")
        gold = gold_answer(answer)
        if gold is None:
            raise DataError("answer has no '#### <number>' line", source=str(path), record=line_no)
        text = f"{instruction}\n\n{question}" if instruction else question
        records.append({"id": f"gsm8k_{index}", "dataset": "gsm8k", "prompt": user_prompt(text), "reference": gold})
    return records


def load_text_prompts(path: str | Path, dataset: str) -> list[dict]:
    """Files with one JSON string per line (the OASST prompt lists); ids are `<dataset>_<index>`."""
    path = Path(path)
    records = []
    for index, (line_no, obj) in enumerate(iter_jsonl(path)):
        if not isinstance(obj, str) or not obj.strip():
            raise DataError("expected one non-empty JSON string (the prompt) per line", source=str(path), record=line_no)
        records.append({"id": f"{dataset}_{index}", "dataset": dataset, "prompt": user_prompt(obj)})
    return records


def _prompt_id(obj: object, index: int, dataset: str, id_field: str | None) -> str:
    return str(obj[id_field]) if isinstance(obj, dict) and id_field and id_field in obj else f"{dataset}_{index}"


def _raise_repeated_id(path: Path, dataset: str, id_field: str | None, suspects: set[int], limit: int | None) -> None:
    """Read the file again, keeping the ids whose digest is in `suspects`, and name the first repeat."""
    lines: dict[str, int] = {}
    for index, (line_no, obj) in enumerate(iter_jsonl(path)):
        if limit is not None and index >= limit:
            return
        record_id = _prompt_id(obj, index, dataset, id_field)
        if key_digest(record_id) not in suspects:
            continue
        if record_id in lines:
            raise DataError(f"id {record_id!r} is already on line {lines[record_id]}; generations are matched by id, "
                            "so each prompt needs its own", source=str(path), record=line_no)
        lines[record_id] = line_no


def iter_jsonl_prompts(path: str | Path, dataset: str, prompt_field: str = "prompt", id_field: str | None = "id",
                       category_field: str | None = None, reference_field: str | None = None,
                       metadata_fields: dict[str, str] | None = None, limit: int | None = None) -> Iterator[dict]:
    """Any JSONL, read line by line (the first `limit` records): `prompt_field` holds a string or a
    message list; a bare JSON string line is the prompt itself. Without an id field, ids are
    `<dataset>_<index>`. With `metadata_fields` ({key: field}), each record gets `metadata` {"id",
    key: obj[field]}, carried into the generations file for `python -m rlhf.evaluate accuracy`. An id
    given twice is named, with both lines, once the records are read (8 bytes kept per record)."""
    path = Path(path)
    digests = array("Q")
    for index, (line_no, obj) in enumerate(iter_jsonl(path)):
        if limit is not None and index >= limit:
            break
        if isinstance(obj, str):
            obj = {prompt_field: obj}
        if not isinstance(obj, dict) or prompt_field not in obj:
            raise DataError(f"missing prompt field '{prompt_field}' (a string or a list of messages)",
                            source=str(path), record=line_no)
        value = obj[prompt_field]
        if isinstance(value, str) and value.strip():
            prompt = user_prompt(value)
        else:
            prompt = validate_messages(value, path, line_no)
        record_id = _prompt_id(obj, index, dataset, id_field)
        record = {"id": record_id, "dataset": dataset, "prompt": prompt}
        for key, field in (("category", category_field), ("reference", reference_field)):
            if field:
                if field not in obj:
                    raise DataError(f"missing field '{field}'", source=str(path), record=line_no)
                record[key] = obj[field]
        if metadata_fields:
            record["metadata"] = {"id": record_id, **record_metadata(obj, metadata_fields, (str(path), line_no))}
        digests.append(key_digest(record_id))
        yield record
    if not digests:
        raise DataError("no prompts: the file has no rows", source=str(path))
    suspects = repeated(digests)
    if suspects:
        _raise_repeated_id(path, dataset, id_field, suspects, limit)


def load_jsonl_prompts(path: str | Path, dataset: str, prompt_field: str = "prompt", id_field: str | None = "id",
                       category_field: str | None = None, reference_field: str | None = None,
                       metadata_fields: dict[str, str] | None = None) -> list[dict]:
    """iter_jsonl_prompts as a list (all records)."""
    return list(iter_jsonl_prompts(path, dataset, prompt_field, id_field, category_field, reference_field,
                                   metadata_fields))


def _bind(dataset: str, loader: Callable) -> Callable:
    return lambda path, **options: loader(path, dataset, **options)


# name -> (file in <data_dir>/eval, loader(path, **options))
PROMPT_SETS: dict[str, tuple[str, Callable]] = {
    "mt_bench": ("mt_bench_question.jsonl.gz", load_mt_bench),
    "vicuna": ("vicuna_bench_question.jsonl.gz", load_vicuna_bench),
    "koala": ("koala_test_set.jsonl.gz", load_koala),
    "user_oriented": ("user_oriented_instructions.jsonl.gz", load_user_oriented),
    "gsm8k": ("gsm8k_test.jsonl.gz", load_gsm8k),
    "oasst_en_100": ("oasst_en_100_text.jsonl.gz", _bind("oasst_en_100", load_text_prompts)),
    "oasst_lottery_250": ("oasst_prompt_lottery_en_250_text.jsonl.gz", _bind("oasst_lottery_250", load_text_prompts)),
}


def default_data_dir() -> Path:
    """RLHF_DATA_DIR, else shared/data beside the repository checkout (the project layout)."""
    return Path(os.environ.get("RLHF_DATA_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data")


def load_prompt_set(name: str, data_dir: str | Path | None = None, limit: int | None = None, **options) -> list[dict]:
    """Load a named set from the data kit; `limit` keeps the first n records (smoke runs)."""
    if name not in PROMPT_SETS:
        raise ConfigError("evaluate.prompt_set", f"unknown prompt set '{name}'; known: {sorted(PROMPT_SETS)} "
                          "(use load_jsonl_prompts for any other JSONL file)")
    filename, loader = PROMPT_SETS[name]
    path = Path(data_dir or default_data_dir()) / "eval" / filename
    if not path.is_file():
        raise ConfigError("evaluate.data_dir", f"{path} not found; point data_dir or RLHF_DATA_DIR at shared/data")
    records = loader(path, **options)
    return records[:limit] if limit is not None else records
