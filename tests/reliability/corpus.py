"""Broken inputs that the entry-point suite writes for itself: each fault is a function that breaks a
schema's good records in one way and writes the result into a folder.

A `Schema` describes one kind of input file (SFT records, pairs, judgments, ...): a few good records
and which field to drop, mistype, empty, enlarge or fill with a bad number. A fault returns the
file and the 1-based line that holds the fault (None when the whole file is at fault), so a test
can check that the error names both.
"""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MEGABYTE = 1 << 20
Key = str | tuple   # a top-level field, or a path into nested records: ("metadata", "answer")


def set_at(record: dict, key: Key, value) -> None:
    *parents, last = key if isinstance(key, tuple) else (key,)
    for part in parents:
        record = record[part]
    record[last] = value


@dataclass(frozen=True)
class Schema:
    """One kind of JSONL input. `good` holds at least two valid records; the fault goes into the
    last one, so the error must name line len(good) (or the line the fault adds)."""

    name: str
    good: list[dict]
    required: str                      # a field every record needs
    text: Key                          # a free-text field (emptied, or grown to 1 MB)
    id_field: str | None = None        # a field that must be unique per file
    number: Key | None = None          # a numeric field (set to NaN, inf)
    out_of_range: tuple[Key, object] | None = None   # (field, a value outside its range)
    wrong_type: object = field(default_factory=lambda: ["not", "a", "string"])   # for `required`


@dataclass(frozen=True)
class Fault:
    """`write(folder, schema) -> (path, line)`; `applies(schema)` says whether the schema has what
    the fault breaks (ids, a number)."""

    name: str
    description: str
    write: Callable[[Path, Schema], tuple[Path, int | None]]
    applies: Callable[[Schema], bool] = lambda schema: True


def _line(record) -> str:
    return record if isinstance(record, str) else json.dumps(record)


def write_lines(path: Path, records) -> Path:
    path.write_text("".join(_line(r) + "\n" for r in records), encoding="utf-8")
    return path


def _target(folder: Path, schema: Schema, suffix: str = ".jsonl") -> Path:
    return folder / f"{schema.name}{suffix}"


def _with_last(schema: Schema, change: Callable[[dict], object]) -> list:
    """The good records with the last one changed by `change(record)` (which edits it in place or
    returns a replacement)."""
    records = copy.deepcopy(schema.good)
    replaced = change(records[-1])
    if replaced is not None:
        records[-1] = replaced
    return records


def _edit(schema: Schema, change: Callable[[dict], object]):
    def write(folder: Path, schema_: Schema = schema):
        return write_lines(_target(folder, schema_), _with_last(schema_, change)), len(schema_.good)
    return write


def missing_file(folder: Path, schema: Schema):
    return _target(folder, schema, ".missing.jsonl"), None


def empty_file(folder: Path, schema: Schema):
    path = _target(folder, schema)
    path.write_bytes(b"")
    return path, None


def blank_line_only(folder: Path, schema: Schema):
    path = _target(folder, schema)
    path.write_text("\n   \n")
    return path, None


def truncated_gzip(folder: Path, schema: Schema):
    """The good records gzipped, with the second half of the stream cut off."""
    path = _target(folder, schema, ".jsonl.gz")
    # Enough text that the cut falls inside the compressed data, not in the header.
    body = "".join(json.dumps(r) + "\n" for r in schema.good * 40).encode()
    packed = gzip.compress(body)
    path.write_bytes(packed[: len(packed) // 2])
    return path, None


def not_utf8(folder: Path, schema: Schema):
    """Latin-1 bytes inside the last record's text: valid JSON structure, not UTF-8."""
    path = _target(folder, schema)
    records = _with_last(schema, lambda r: set_at(r, schema.text, "caf\u00e9"))
    lines = [_line(r).encode("utf-8") for r in records[:-1]]
    lines.append(json.dumps(records[-1], ensure_ascii=False).encode("latin-1"))
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path, len(schema.good)


def json_array(folder: Path, schema: Schema):
    """The records as one pretty-printed JSON array, the way json.dump(records, indent=2) writes it."""
    path = _target(folder, schema)
    path.write_text(json.dumps(schema.good, indent=2) + "\n")
    return path, 1


def broken_json(folder: Path, schema: Schema):
    """The last line cut in the middle of a record."""
    records = [_line(r) for r in schema.good]
    records[-1] = records[-1][: len(records[-1]) // 2]
    return write_lines(_target(folder, schema), records), len(schema.good)


def not_an_object(folder: Path, schema: Schema):
    records = [_line(r) for r in schema.good]
    records[-1] = json.dumps("a string where a record should be")
    return write_lines(_target(folder, schema), records), len(schema.good)


def blank_line_between(folder: Path, schema: Schema):
    """A blank line between good records: allowed, it is skipped."""
    records = [_line(r) for r in schema.good]
    return write_lines(_target(folder, schema), [records[0], "", *records[1:]]), None


def duplicate_ids(folder: Path, schema: Schema):
    first = schema.good[0][schema.id_field]
    return _edit(schema, lambda r: set_at(r, schema.id_field, first))(folder)


def _number(value):
    def write(folder: Path, schema: Schema):
        return _edit(schema, lambda r: set_at(r, schema.number, value))(folder)
    return write


def _out_of_range(folder: Path, schema: Schema):
    key, value = schema.out_of_range
    return _edit(schema, lambda r: set_at(r, key, value))(folder)


def _drop(folder: Path, schema: Schema):
    return _edit(schema, lambda r: r.__delitem__(schema.required))(folder)


def _extra(folder: Path, schema: Schema):
    return write_lines(_target(folder, schema), [{**r, "note": "an extra field"} for r in schema.good]), None


def _mistype(folder: Path, schema: Schema):
    return _edit(schema, lambda r: set_at(r, schema.required, schema.wrong_type))(folder)


def _empty(folder: Path, schema: Schema):
    return _edit(schema, lambda r: set_at(r, schema.text, ""))(folder)


def _huge(folder: Path, schema: Schema):
    return _edit(schema, lambda r: set_at(r, schema.text, "word " * (MEGABYTE // 5)))(folder)


FAULTS: dict[str, Fault] = {f.name: f for f in [
    Fault("missing_file", "the file does not exist", missing_file),
    Fault("empty_file", "0 bytes", empty_file),
    Fault("blank_line_only", "only blank lines", blank_line_only),
    Fault("truncated_gzip", ".jsonl.gz cut in half", truncated_gzip),
    Fault("not_utf8", "a Latin-1 byte in a record", not_utf8),
    Fault("json_array", "a JSON array (indent=2) instead of JSONL", json_array),
    Fault("broken_json", "the last line cut mid-record", broken_json),
    Fault("not_an_object", "a JSON string where a record should be", not_an_object),
    Fault("missing_field", "a required field dropped", _drop),
    Fault("wrong_type", "a required field of the wrong type", _mistype),
    Fault("empty_string", "a text field set to \"\"", _empty),
    Fault("huge_line", "a 1 MB text field", _huge),
    Fault("duplicate_ids", "two records with the same id", duplicate_ids, lambda s: s.id_field is not None),
    Fault("nan", "NaN in a numeric field", _number(float("nan")), lambda s: s.number is not None),
    Fault("inf", "Infinity in a numeric field", _number(float("inf")), lambda s: s.number is not None),
    Fault("out_of_range", "a number outside its range", _out_of_range, lambda s: s.out_of_range is not None),
    Fault("extra_field", "an unknown field in every record", _extra),
    Fault("blank_line_between", "a blank line between records", blank_line_between),
]}


def fault_names(schema: Schema) -> list[str]:
    return [name for name, fault in FAULTS.items() if fault.applies(schema)]


# ---------------------------------------------------------------- model folders


def model_folder_without_weights(folder: Path, source: Path) -> Path:
    """A copy of a saved model's folder with every weight file removed (config and tokenizer kept)."""
    out = folder / "no_weights"
    out.mkdir()
    for item in source.iterdir():
        weights = item.name.endswith((".safetensors", ".bin")) or item.name == "model.safetensors.index.json"
        if item.is_file() and not weights:
            (out / item.name).write_bytes(item.read_bytes())
    return out


def model_folder_with_pickle_only(folder: Path, source: Path) -> Path:
    """A saved model's folder whose weights are a pickled `pytorch_model.bin` (never loaded: a
    pickle can run code). The .bin holds a harmless tensor dict."""
    import torch
    out = model_folder_without_weights(folder, source)
    final = out.with_name("pickle_only")
    out.rename(final)
    torch.save({"weight": torch.zeros(1)}, final / "pytorch_model.bin")
    return final


def missing_model_folder(folder: Path, source: Path) -> Path:
    return folder / "no_such_model"


def empty_model_folder(folder: Path, source: Path) -> Path:
    out = folder / "empty_model"
    out.mkdir()
    return out


MODEL_FAULTS: dict[str, tuple[str, Callable[[Path, Path], Path]]] = {
    "model_missing": ("the model folder does not exist", missing_model_folder),
    "model_empty_folder": ("an empty folder", empty_model_folder),
    "model_no_weights": ("config and tokenizer, no weights", model_folder_without_weights),
    "model_pickle_only": ("only a pickled pytorch_model.bin", model_folder_with_pickle_only),
}
