"""Record files (rlhf/data/jsonl.py): read with line numbers so errors can name the bad record,
written atomically so a killed run never leaves half a file."""

from __future__ import annotations

import gzip
import json

import pytest

import rlhf.data.jsonl as jsonl
from rlhf.core.errors import DataError
from rlhf.data.jsonl import is_local, iter_jsonl, iter_source, write_jsonl_atomic

RECORDS = [
    {"prompt": "Héllo — 你好", "response": "ok", "score": 0.5},
    {"prompt": "nested", "messages": [{"role": "user", "content": "a\nb"}], "tags": [], "none": None},
    {"prompt": "", "response": "quote \" and backslash \\"},
]


# ---------------------------------------------------------------- write / read


def test_write_then_read_round_trips_records_with_1_based_line_numbers(tmp_path):
    path = write_jsonl_atomic(tmp_path / "out.jsonl", RECORDS)
    assert path == tmp_path / "out.jsonl"
    assert list(iter_jsonl(path)) == [(1, RECORDS[0]), (2, RECORDS[1]), (3, RECORDS[2])]


def test_written_file_is_one_utf8_line_per_record(tmp_path):
    path = write_jsonl_atomic(tmp_path / "out.jsonl", RECORDS)
    text = path.read_bytes().decode("utf-8")
    lines = text.split("\n")
    # 3 records -> 3 lines, each ending in "\n" (so the split leaves one empty tail)
    assert len(lines) == 4 and lines[-1] == ""
    # ensure_ascii=False: non-ASCII text stays readable rather than \u escapes
    assert "Héllo — 你好" in lines[0] and "\\u" not in lines[0]
    # the newline inside a message is escaped, so it does not split the record
    assert json.loads(lines[1])["messages"][0]["content"] == "a\nb"


def test_write_creates_missing_parent_folders(tmp_path):
    path = write_jsonl_atomic(tmp_path / "a" / "b" / "out.jsonl", [{"x": 1}])
    assert path.read_text() == '{"x": 1}\n'


def test_write_accepts_a_generator_and_an_empty_iterable(tmp_path):
    write_jsonl_atomic(tmp_path / "gen.jsonl", ({"i": i} for i in range(3)))
    assert [r for _, r in iter_jsonl(tmp_path / "gen.jsonl")] == [{"i": 0}, {"i": 1}, {"i": 2}]
    write_jsonl_atomic(tmp_path / "empty.jsonl", [])
    assert (tmp_path / "empty.jsonl").read_text() == ""
    assert list(iter_jsonl(tmp_path / "empty.jsonl")) == []


def test_blank_lines_are_skipped_but_still_counted(tmp_path):
    # lines: 1 record, 2 empty, 3 whitespace only, 4 record -> numbers 1 and 4 (what an editor shows)
    path = tmp_path / "gaps.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"a": 2}\n')
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (4, {"a": 2})]


def test_gzipped_jsonl_is_read_transparently(tmp_path):
    path = tmp_path / "data.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write('{"a": 1}\n{"a": "é"}\n')
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (2, {"a": "é"})]


def test_json_list_file_numbers_its_records(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{"a": 1}, {"a": 2}], indent=2))
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (2, {"a": 2})]


# ---------------------------------------------------------------- errors name file and line


def test_bad_line_error_names_the_file_and_line_number(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2,}\n{"a": 3}\n')  # line 3 has a trailing comma
    reader = iter_jsonl(path)
    assert next(reader) == (1, {"a": 1})  # records before the bad line are still served
    with pytest.raises(DataError) as info:
        next(reader)
    assert info.value.record == 3
    assert info.value.source == str(path)
    assert str(info.value).startswith(f"{path}, record 3: invalid JSON")


def test_truncated_last_line_is_reported_with_its_number(tmp_path):
    # what a writer killed mid-line would leave behind
    path = tmp_path / "cut.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    with pytest.raises(DataError, match=r"record 3: invalid JSON"):
        list(iter_jsonl(path))


def test_invalid_json_file_reports_the_line_of_the_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"a": 1},\n  {"a": }\n]\n')  # the value is missing on line 3
    with pytest.raises(DataError) as info:
        list(iter_jsonl(path))
    assert info.value.record == 3


def test_json_file_that_is_not_a_list_is_rejected(tmp_path):
    path = tmp_path / "one.json"
    path.write_text('{"a": 1}')
    with pytest.raises(DataError, match="must hold a list of records"):
        list(iter_jsonl(path))


def test_missing_file_is_a_data_error_naming_the_path(tmp_path):
    with pytest.raises(DataError, match="file not found") as info:
        list(iter_jsonl(tmp_path / "nope.jsonl"))
    assert info.value.source == str(tmp_path / "nope.jsonl")


# ---------------------------------------------------------------- atomic write


class Boom(RuntimeError):
    pass


def records_then_crash(n: int):
    for i in range(n):
        yield {"i": i}
    raise Boom("killed while writing")


def test_failed_write_leaves_no_file_and_no_temp_file(tmp_path):
    with pytest.raises(Boom):
        write_jsonl_atomic(tmp_path / "out.jsonl", records_then_crash(5))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file_intact(tmp_path):
    path = write_jsonl_atomic(tmp_path / "out.jsonl", [{"old": 1}, {"old": 2}])
    with pytest.raises(Boom):
        write_jsonl_atomic(path, records_then_crash(5))
    assert path.read_text() == '{"old": 1}\n{"old": 2}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_unserialisable_record_is_a_failed_write_too(tmp_path):
    with pytest.raises(TypeError):
        write_jsonl_atomic(tmp_path / "out.jsonl", [{"ok": 1}, {"bad": object()}])
    assert list(tmp_path.iterdir()) == []


def test_successful_write_replaces_the_old_file(tmp_path):
    path = write_jsonl_atomic(tmp_path / "out.jsonl", [{"v": 1}, {"v": 2}, {"v": 3}])
    write_jsonl_atomic(path, [{"v": 9}])
    assert path.read_text() == '{"v": 9}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


# ---------------------------------------------------------------- local file or hub dataset


def test_is_local_by_existence_or_extension(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    assert is_local(folder)  # exists
    assert is_local("not/there/yet.jsonl") and is_local("x.jsonl.gz") and is_local("x.json") and is_local("x.json.gz")
    assert not is_local("Anthropic/hh-rlhf")  # a hub id


def test_iter_source_reads_local_files_and_sends_hub_ids_to_the_hub(tmp_path, monkeypatch):
    path = write_jsonl_atomic(tmp_path / "local.jsonl", [{"a": 1}])
    calls = []

    def fake_hub(dataset_id, split, name=None):
        calls.append((dataset_id, split, name))
        yield 1, {"hub": True}

    monkeypatch.setattr(jsonl, "iter_hub", fake_hub)
    assert list(iter_source(path)) == [(1, {"a": 1})]
    assert calls == []
    assert list(iter_source("org/dataset", split="test", name="cfg")) == [(1, {"hub": True})]
    assert calls == [("org/dataset", "test", "cfg")]
