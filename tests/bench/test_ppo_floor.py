"""bench/ppo_floor.py trims padding as our update loop does, so the floor does no work ours skips."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from ppo_floor import trimmed  # noqa: E402


def test_columns_padding_in_every_row_are_dropped_on_both_sides():
    # prompt width 4 (left-padded), response width 4 (right-padded); pad id 0
    ids = torch.tensor([[0, 0, 5, 6, 7, 8, 0, 0],
                        [0, 4, 5, 6, 7, 0, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 0, 0],
                         [0, 1, 1, 1, 1, 0, 0, 0]])
    out_ids, out_mask, width = trimmed(ids, mask, response_width=4)
    assert width == 2  # response columns 0-1 hold a real token somewhere, 2-3 never
    assert out_ids.tolist() == [[0, 5, 6, 7, 8], [4, 5, 6, 7, 0]]
    assert out_mask.tolist() == [[0, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
