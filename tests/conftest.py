"""Shared fixtures: where the real data lives, and the tiny model every fast test uses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import rlhf.config.store  # noqa: F401  (the config schemas, for tests that compose configs themselves)

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_shared_data() -> Path | None:
    env = os.environ.get("RLHF_DATA_DIR")
    candidate = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    path = find_shared_data()
    if path is None:
        pytest.skip("real data folder not found (../shared/data): set RLHF_DATA_DIR to run this test")
    return path
