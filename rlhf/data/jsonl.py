"""Reading records with their line numbers, so every schema error can name file and record."""

from __future__ import annotations

import gzip
import json
import zlib
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
    if path.name.endswith((".json", ".json.gz")):
        yield from _iter_json_list(path)
        return
    number = 0
    with _open_bytes(path) as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                line = _decode(raw, path, number)
                if not line.strip():
                    continue
                yield number, _parse(line, path, number)
        except (EOFError, OSError, zlib.error) as err:
            read = f" after line {number}" if number else ""
            raise DataError(f"{_gzip_problem(err)}{read}", source=str(path)) from err


def _not_a_number(name: str):
    raise ValueError(f"{name} is not a JSON number; write null, or leave the record out")


def _parse(text: str, path: Path, number: int) -> object:
    """json.loads without Python's NaN / Infinity extension: they are not JSON, and a NaN score or
    label would poison every mean computed from it."""
    try:
        return json.loads(text, parse_constant=_not_a_number)
    except json.JSONDecodeError as err:
        hint = _array_hint(text) if number == 1 else ""
        raise DataError(f"invalid JSON at column {err.colno} ({err.msg.removesuffix(' at')}){hint}",
                        source=str(path), record=number if number else err.lineno) from err
    except ValueError as err:
        raise DataError(str(err), source=str(path), record=number or None) from err


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _decode(raw: bytes, path: Path, number: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text (byte {raw[err.start:err.start + 1]!r} at column {err.start + 1}); "
                        "save the file as UTF-8", source=str(path), record=number) from err


def _array_hint(line: str) -> str:
    if line.lstrip().startswith("["):
        return ("; this looks like a JSON array: a .jsonl file holds one JSON object per line "
                "(name the file .json to read an array)")
    return ""


def _gzip_problem(err: Exception) -> str:
    if isinstance(err, EOFError):
        return "the gzip stream is truncated (the file was cut short)"
    return f"not a readable gzip file ({err})"


def _iter_json_list(path: Path) -> Iterator[tuple[int, object]]:
    """A .json file holds one list of records; they are numbered from 1 in list order."""
    with _open_bytes(path) as handle:
        try:
            raw = handle.read()
        except (EOFError, OSError, zlib.error) as err:
            raise DataError(_gzip_problem(err), source=str(path)) from err
    for number, part in enumerate(raw.split(b"\n"), start=1):
        _decode(part, path, number)   # names the first line that is not UTF-8
    values = _parse(raw.decode("utf-8"), path, 0)
    if not isinstance(values, list):
        raise DataError("a .json data file must hold a list of records", source=str(path))
    yield from enumerate(values, start=1)


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
    leaves half a file that a later step would trust. `records` may be a generator that reads its
    input as it goes: lines are written as they come, and an error raised by it removes the staged file."""

    def write(handle) -> None:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    if Path(path).is_dir():
        raise DataError("is a folder; the output must be a file path (e.g. out.jsonl)", source=str(path))
    return publish_file(path, write, text=True)


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last may be shorter): a stream worked on a batch at a time."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
