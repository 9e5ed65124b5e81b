"""Padding trim and length-sorted micro-batches of a PPO minibatch, on a hand-built batch."""

from __future__ import annotations

import pytest
import torch

from rlhf.rl.experience import Experience, length_sorted_micro_batches, trim_padding


def batch() -> Experience:
    """4 rows: prompts left-padded to 5 columns (real lengths 2, 4, 1, 3), responses right-padded to
    6 columns (real lengths 3, 1, 4, 2). Every [B, R] field holds 100·row + column, so a test can
    see which row and column survived."""
    query_mask = torch.tensor([[0, 0, 0, 1, 1],
                               [0, 1, 1, 1, 1],
                               [0, 0, 0, 0, 1],
                               [0, 0, 1, 1, 1]])
    response_mask = torch.tensor([[1, 1, 1, 0, 0, 0],
                                  [1, 0, 0, 0, 0, 0],
                                  [1, 1, 1, 1, 0, 0],
                                  [1, 1, 0, 0, 0, 0]])
    query_ids = torch.arange(4)[:, None] * 100 + torch.arange(5)[None] + 10
    per_token = (torch.arange(4)[:, None] * 100 + torch.arange(6)[None]).float()
    return Experience(query_ids, query_mask, per_token.long(), response_mask, per_token, per_token + 0.5,
                      per_token + 0.25, per_token - 1, per_token * 2, per_token * 3)


def test_trim_drops_only_columns_that_are_padding_in_every_row():
    trimmed = trim_padding(batch())
    # prompt column 0 is padding in every row (the longest prompt has 4 tokens); responses end by column 3
    assert trimmed.query_mask.tolist() == [[0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1], [0, 1, 1, 1]]
    assert trimmed.query_ids[:, 0].tolist() == [11, 111, 211, 311]
    assert trimmed.response_mask.shape == (4, 4)
    for name in ("response_ids", "old_logprobs", "ref_logprobs", "old_values", "advantages", "returns", "rewards"):
        assert getattr(trimmed, name).shape == (4, 4), name
    assert trimmed.old_values[2].tolist() == [200.25, 201.25, 202.25, 203.25]


def test_micro_batches_group_rows_by_length_and_trim_each():
    # real lengths (prompt + response): row0 2+3=5, row1 4+1=5, row2 1+4=5, row3 3+2=5 -> make them differ
    exp = batch()
    exp.response_mask[1] = torch.tensor([1, 1, 1, 1, 1, 1])      # row1: 4 + 6 = 10
    parts = length_sorted_micro_batches(exp, 2)
    # lengths 5, 10, 5, 5 -> stable order rows 0, 2, 3, 1 -> micro-batches (0, 2) and (3, 1)
    assert [p.response_ids[:, 0].div(100).long().tolist() for p in parts] == [[0, 2], [3, 1]]
    first, second = parts
    assert first.query_mask.tolist() == [[1, 1], [0, 1]]          # prompts of 2 and 1 tokens
    assert first.response_mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert second.query_mask.shape == (2, 4) and second.response_mask.shape == (2, 6)
    real_tokens = sum(int(p.response_mask.sum()) for p in parts)
    assert real_tokens == int(exp.response_mask.sum())            # nothing real is lost


@pytest.mark.parametrize("size", [None, 0, 4, 9])
def test_no_micro_batch_size_gives_one_trimmed_minibatch_in_its_own_order(size):
    parts = length_sorted_micro_batches(batch(), size)
    assert len(parts) == 1
    assert parts[0].response_ids[:, 0].tolist() == [0, 100, 200, 300]
    assert parts[0].query_mask.shape == (4, 4)


def test_uneven_split_keeps_every_row_once():
    parts = length_sorted_micro_batches(batch(), 3)
    assert [p.n_rows for p in parts] == [3, 1]
    rows = sorted(int(r) // 100 for p in parts for r in p.response_ids[:, 0])
    assert rows == [0, 1, 2, 3]


def test_negative_size_is_an_error():
    with pytest.raises(ValueError, match="micro-batch size"):
        length_sorted_micro_batches(batch(), -1)
