"""Publishing a file or a folder leaves the old version or the new one, never half of one."""

from __future__ import annotations

import os

import pytest

from rlhf.core.atomic import publish_file, publish_folder


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_file_is_published_with_the_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        path = publish_file(tmp_path / "sub" / "a.txt", lambda f: f.write("héllo\n"), text=True)
    finally:
        os.umask(old)
    assert path.read_text(encoding="utf-8") == "héllo\n"
    assert path.stat().st_mode & 0o777 == 0o644
    assert names(tmp_path / "sub") == ["a.txt"]


def test_failed_file_write_keeps_the_old_file_and_no_staging(tmp_path):
    path = publish_file(tmp_path / "a.bin", lambda f: f.write(b"old"))

    def dies(handle):
        handle.write(b"half")
        raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        publish_file(path, dies)
    assert path.read_bytes() == b"old"
    assert names(tmp_path) == ["a.bin"]


def test_folder_replaces_the_old_one_as_a_whole(tmp_path):
    def write(files):
        return lambda folder: [(folder / n).write_text(n) for n in files]

    target = publish_folder(tmp_path / "model", write(["a", "stale"]))
    publish_folder(target, write(["a", "b"]))
    assert names(target) == ["a", "b"]                  # nothing of the old folder survives
    assert names(tmp_path) == ["model"]                 # no staging, no old copy left behind


def test_failed_folder_write_keeps_the_old_folder(tmp_path):
    target = publish_folder(tmp_path / "model", lambda folder: (folder / "a").write_text("old"))

    def dies(folder):
        (folder / "a").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        publish_folder(target, dies)
    assert (target / "a").read_text() == "old"
    assert names(tmp_path) == ["model"]


def test_folder_gets_the_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        target = publish_folder(tmp_path / "model", lambda folder: (folder / "a").write_text("x"))
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o755
