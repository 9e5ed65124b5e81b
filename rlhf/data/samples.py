"""The samples artifact: K sampled responses per prompt, one JSON object per line,

    {"id": str, "prompt": str | [messages], "responses": [str, ...], "metadata": {...}}

written by the pipeline's sample stage and ranked by its annotate stage (or given with
`artifacts.sample=FILE`). Reading checks each line, so a hand-made file fails on the line at fault.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rlhf.core.errors import DataError
from rlhf.data.jsonl import iter_jsonl

ROLES = ("system", "user", "assistant")


def _prompt_problem(prompt: object) -> str | None:
    if isinstance(prompt, str):
        return None if prompt.strip() else "'prompt' is an empty string"
    if not isinstance(prompt, list) or not prompt:
        return f"'prompt' must be a string or a non-empty list of messages, got {type(prompt).__name__}"
    for i, message in enumerate(prompt):
        if (not isinstance(message, dict) or message.get("role") not in ROLES
                or not isinstance(message.get("content"), str)):
            return f"'prompt' message {i} needs role {'/'.join(ROLES)} and string content, got {message!r:.80}"
    if prompt[-1]["role"] != "user":
        return f"'prompt' must end with a user turn, it ends with {prompt[-1]['role']!r}"
    return None


def iter_samples(path: str | Path) -> Iterator[dict]:
    """Sample rows with a message-list prompt; the first line that does not fit names what it lacks."""
    rows = 0
    for line, row in iter_jsonl(path):
        def fail(message: str) -> DataError:
            return DataError(message, source=str(path), record=line)

        if not isinstance(row, dict):
            raise fail(f"expected a JSON object {{prompt, responses}}, got {type(row).__name__}")
        missing = [key for key in ("prompt", "responses") if key not in row]
        if missing:
            raise fail(f"missing field(s) {missing} (fields present: {sorted(row)}); a sample row is "
                       "{\"prompt\": str | messages, \"responses\": [str, ...]}")
        problem = _prompt_problem(row["prompt"])
        if problem:
            raise fail(problem)
        responses = row["responses"]
        if not isinstance(responses, list) or not responses or not all(isinstance(r, str) for r in responses):
            raise fail(f"'responses' must be a non-empty list of strings, got {responses!r:.80}")
        prompt = row["prompt"]
        rows += 1
        yield {**row, "prompt": [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt}
    if not rows:
        raise DataError("no samples: the file has no rows", source=str(path))
