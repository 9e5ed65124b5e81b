"""Reading records with their line numbers, so every schema error can name file and record."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from rlhf.core.atomic import publish_file
from rlhf.core.errors import DataError


def is_local(source: str | Path) -> bool:
    return Path(source).exists() or str(source).endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz"))


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, object]]:
    """Yield (1-based line number, parsed value); blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", source=str(path))
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        if path.name.endswith((".json", ".json.gz")):
            try:
                values = json.load(handle)
            except json.JSONDecodeError as err:
                raise DataError(f"invalid JSON: {err.msg}", source=str(path), record=err.lineno) from err
            if not isinstance(values, list):
                raise DataError("a .json data file must hold a list of records", source=str(path))
            yield from enumerate(values, start=1)
            return
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"invalid JSON: {err.msg}", source=str(path), record=number) from err


def iter_hub(dataset_id: str, split: str, name: str | None = None) -> Iterator[tuple[int, object]]:
    """Hub datasets (needs network); record numbers are 1-based row indices."""
    import datasets

    rows = datasets.load_dataset(dataset_id, name, split=split)
    yield from enumerate(rows, start=1)


def iter_source(source: str | Path, split: str = "train", name: str | None = None) -> Iterator[tuple[int, object]]:
    if is_local(source):
        yield from iter_jsonl(source)
    else:
        yield from iter_hub(str(source), split, name)


def write_jsonl_atomic(path: str | Path, records: Iterable[dict]) -> Path:
    """One JSON object per line, published in one rename (rlhf.core.atomic): a killed run never
    leaves half a file that a later step would trust."""

    def write(handle) -> None:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    return publish_file(path, write, text=True)
