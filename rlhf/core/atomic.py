"""Publishing a file or a folder all at once, so that a run killed at any moment (or a machine that
loses power) leaves the previous version or the new one, never half of one.

Both helpers stage next to the target (same filesystem, so the final rename is atomic) under a
hidden name, let the caller write there, fsync what was written, rename it over the target and
fsync the parent folder. Published files and folders get the mode a plain open() / mkdir() would
give them (the temp-file functions create them private).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_path(path: Path) -> None:
    """fsync a file or a folder; filesystems that cannot sync a folder are left as they are."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish_file(path: str | Path, write_fn: Callable[[IO], object], *, text: bool = False) -> Path:
    """Write a file through `write_fn(handle)` and publish it in one rename; returns the path.

    The handle is binary, or UTF-8 text with `text=True`. If `write_fn` raises (or the process is
    interrupted), the staged file is removed and an existing file at `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    staging = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb") as handle:
            write_fn(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    _fsync_path(path.parent)
    return path


def publish_folder(path: str | Path, write_fn: Callable[[Path], object]) -> Path:
    """Fill a folder through `write_fn(staging_folder)` and publish it in one rename; returns the path.

    A folder already at `path` is replaced as a whole (moved aside, then deleted), so readers see
    the old contents or the new ones, never a mix. On failure the staged folder is removed and the
    old one stays.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    old = None
    try:
        os.chmod(staging, 0o777 & ~_umask())
        write_fn(staging)
        for folder, _, files in os.walk(staging):
            for name in files:
                _fsync_path(Path(folder, name))
            _fsync_path(Path(folder))
        if target.exists():
            # POSIX rename cannot replace a non-empty folder: move the old one aside first.
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
            os.replace(target, old)
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(old, target)
                old = None
                raise
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)
    _fsync_path(target.parent)
    return target
