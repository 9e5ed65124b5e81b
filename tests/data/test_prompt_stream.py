"""The refill stream of dynamic sampling: its own order, a fresh permutation per cycle, resumable."""

from __future__ import annotations

import pytest
import torch

from rlhf.core.errors import DataError
from rlhf.data.prompt_stream import STREAM_SEED_OFFSET, PromptStream

RECORDS = [{"id": f"p{i}", "prompt": [{"role": "user", "content": f"q{i}"}], "input_ids": [i], "metadata": {"id": f"p{i}"}}
           for i in range(5)]


def test_cycles_draw_fresh_permutations_by_hand():
    stream = PromptStream(RECORDS, batch_size=2, seed=3)
    first = torch.randperm(5, generator=torch.Generator().manual_seed(3 + STREAM_SEED_OFFSET)).tolist()
    second = torch.randperm(5, generator=torch.Generator().manual_seed(3 + 2 * STREAM_SEED_OFFSET)).tolist()
    batches = [stream.next_batch()["ids"] for _ in range(3)]
    assert batches[0] == [f"p{i}" for i in first[:2]] and batches[1] == [f"p{i}" for i in first[2:4]]
    assert batches[2] == [f"p{i}" for i in second[:2]]  # 5 // 2 = 2 batches per cycle


def test_state_resumes_at_the_next_batch():
    stream = PromptStream(RECORDS, batch_size=2)
    stream.next_batch()
    state = stream.state_dict()
    expected = stream.next_batch()
    resumed = PromptStream(RECORDS, batch_size=2)
    resumed.load_state_dict(state)
    assert resumed.next_batch() == expected


def test_no_records_is_a_clear_error():
    with pytest.raises(DataError, match="no prompt records"):
        PromptStream([], batch_size=2)
