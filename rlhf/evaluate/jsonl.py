"""JSON Lines reading and writing for every evaluation artifact (generations, judgments, rankings).

Line numbers are 1-based and travel with each record, so a bad record can be reported where it is.
`.gz` files are read and written transparently, because the shared data kit ships gzip JSONL.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from rlhf.errors import DataError


def _open_text(path: Path, mode: str):
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def read_jsonl(path: str | Path) -> Iterator[tuple[int, object]]:
    """Yield (line number, decoded value) for each non-blank line."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", source=str(path))
    with _open_text(path, "r") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"not valid JSON ({error.msg}); expected one JSON value per line",
                                source=str(path), record=line_no) from error


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open_text(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
