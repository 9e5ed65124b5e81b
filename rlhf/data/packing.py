"""Shared-prefix packing: the responses of one prompt in one row, their common prefix stored once.

A group [prefix + s1, prefix + s2, ...] becomes the row [prefix, s1, s2, ...]. Segment ids say
which part a token belongs to (0 = prefix, k = the k-th suffix, -1 = padding); each suffix attends
to the prefix and to itself, with positions continuing from the prefix, so every token sees
exactly the context and positions it has in its own sequence. Nothing assumes a prompt boundary:
the prefix is the longest run of tokens all sequences of the group share (rlhf.data.templates.
tokenize_prompt_group makes that the whole prompt), and at least one token of each sequence stays
in its suffix, so every score is read inside its own segment.
"""

from __future__ import annotations

import torch

PAD_SEGMENT = -1


def common_prefix_length(seqs: list[list[int]]) -> int:
    """Tokens all sequences share from the start, leaving each at least one token of its own."""
    limit = min(len(s) for s in seqs) - 1
    n = 0
    while n < limit and all(s[n] == seqs[0][n] for s in seqs[1:]):
        n += 1
    return max(n, 0)


def pack_group(seqs: list[list[int]]) -> tuple[list[int], list[int], list[int], list[int]]:
    """(row ids, position ids, segment ids, column of each sequence's last token) for one group."""
    if not seqs or any(not s for s in seqs):
        raise ValueError("a packed group needs at least one sequence and no empty sequence")
    prefix = common_prefix_length(seqs)
    ids, positions, segments, last = list(seqs[0][:prefix]), list(range(prefix)), [0] * prefix, []
    for k, seq in enumerate(seqs, start=1):
        suffix = seq[prefix:]
        ids += suffix
        positions += range(prefix, len(seq))
        segments += [k] * len(suffix)
        last.append(len(ids) - 1)
    return ids, positions, segments, last


def pack_groups(groups: list[list[list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """One right-padded row per group; `score_index` [N, 2] = (row, column) of each sequence's last
    token, in the order of the flattened groups."""
    packed = [pack_group(g) for g in groups]
    width = max(len(ids) for ids, *_ in packed)
    input_ids = torch.full((len(packed), width), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((len(packed), width), dtype=torch.long)
    segment_ids = torch.full((len(packed), width), PAD_SEGMENT, dtype=torch.long)
    score_index = []
    for row, (ids, positions, segments, last) in enumerate(packed):
        input_ids[row, : len(ids)] = torch.as_tensor(ids)
        position_ids[row, : len(ids)] = torch.as_tensor(positions)
        segment_ids[row, : len(ids)] = torch.as_tensor(segments)
        score_index += [(row, col) for col in last]
    return {"input_ids": input_ids, "position_ids": position_ids, "segment_ids": segment_ids,
            "score_index": torch.tensor(score_index, dtype=torch.long)}


def packed_attention_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """[G, 1, L, L] bool, True = may attend: causal, and only to the prefix or the own segment.

    Padding attends to padding (never to a real token, and no row is all-False, which would give
    NaN in softmax); real tokens never attend to padding.
    """
    length = segment_ids.size(1)
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_ids.device).tril()
    keys, queries = segment_ids.unsqueeze(1), segment_ids.unsqueeze(2)
    visible = (keys == queries) | ((keys == 0) & (queries != PAD_SEGMENT))
    return (visible & causal).unsqueeze(1)
