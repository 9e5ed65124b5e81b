import pytest
import torch

from rlhf.data.packing import (common_prefix_length, first_fit_decreasing, pack_group, pack_groups,
                               packed_attention_mask, token_columns)


def test_common_prefix_leaves_each_sequence_a_token_of_its_own():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 3, 4]]) == 2  # not 3: the first would have no suffix
    assert common_prefix_length([[7, 1], [8, 1]]) == 0  # left-truncated differently: nothing shared
    assert common_prefix_length([[1, 2, 3]]) == 2  # a lone sequence: prefix + its last token


def test_pack_group_worked_example():
    ids, positions, segments, last = pack_group([[1, 2, 3, 4], [1, 2, 5], [1, 2, 6, 7, 8]])
    assert ids == [1, 2, 3, 4, 5, 6, 7, 8]
    assert positions == [0, 1, 2, 3, 2, 2, 3, 4]  # each suffix continues from the prefix
    assert segments == [0, 0, 1, 1, 2, 3, 3, 3]
    assert last == [3, 4, 7]
    with pytest.raises(ValueError, match="no empty sequence"):
        pack_group([[1], []])


def test_first_fit_decreasing_worked_example():
    # width 10: 7 opens row 0, 6 opens row 1, 4 fits row 1 (room 4), 3 fits row 0 (room 3), 2 opens row 2
    assert first_fit_decreasing([3, 7, 2, 6, 4], 10) == [[1, 0], [3, 4], [2]]


def test_pack_groups_shares_rows_and_indexes_scores_in_flat_order():
    # packed lengths: group 0 -> 5 tokens (the width), group 1 -> 3, group 2 -> 2: rows [g0], [g1, g2]
    batch = pack_groups([[[1, 2, 3], [1, 2, 4, 5]], [[9, 8], [7]], [[6, 6]]], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5], [9, 8, 7, 6, 6]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 2, 3], [0, 1, 0, 0, 1]]
    assert batch["segment_ids"].tolist() == [[0, 0, 1, 2, 2], [1, 1, 2, 0, 1]]
    assert batch["document_ids"].tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 1, 1]]
    assert batch["score_index"].tolist() == [[0, 2], [0, 4], [1, 1], [1, 2], [1, 4]]
    lone = pack_groups([[[1, 2, 3], [1, 2, 4, 5]], [[9, 8, 7], [9]]], pad_token_id=0)  # 5 and 4 tokens
    assert lone["document_ids"].tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 0, -1]]


def test_attention_mask_worked_example():
    # group A: prefix (2 tokens), suffix 1 (1 token), suffix 2 (2 tokens); group B: prefix 1, suffix 1; one pad
    segments = torch.tensor([[0, 0, 1, 2, 2, 0, 1, -1]])
    documents = torch.tensor([[0, 0, 0, 0, 0, 1, 1, -1]])
    mask = packed_attention_mask(segments, documents)
    expected = torch.tensor([
        [1, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 0],  # suffix 1: prefix + itself
        [1, 1, 0, 1, 0, 0, 0, 0],  # suffix 2 skips suffix 1
        [1, 1, 0, 1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 0],  # group B starts afresh: nothing of group A
        [0, 0, 0, 0, 0, 1, 1, 0],
        [0, 0, 0, 0, 0, 0, 0, 1],  # padding sees only padding, and is seen by nobody else
    ], dtype=torch.bool)
    assert mask.shape == (1, 1, 8, 8) and torch.equal(mask[0, 0], expected)


def test_token_columns_follow_each_sequence_through_its_packed_group():
    groups = [[[1, 2, 3, 4], [1, 2, 5]], [[7, 8], [7, 9, 9]]]
    packed = pack_groups(groups, pad_token_id=0)
    last = packed["score_index"].tolist()
    flat = [seq for group in groups for seq in group]
    n = 0
    for group in groups:
        columns = token_columns(group, [c for _, c in last[n:n + len(group)]])
        for seq, cols, (row, _) in zip(group, columns, last[n:n + len(group)]):
            # the token at each column is the sequence's own token, in its own position
            assert packed["input_ids"][row, cols].tolist() == seq
            assert packed["position_ids"][row, cols].tolist() == list(range(len(seq)))
        n += len(group)
    assert n == len(flat)
