"""Shared-prefix packing: the responses of one prompt in one run of tokens, their common prefix once.

A group [prefix + s1, prefix + s2, ...] becomes the run [prefix, s1, s2, ...]. Segment ids say
which part a token belongs to (0 = prefix, k = the k-th suffix, -1 = padding); each suffix attends
to the prefix and to itself, with positions continuing from the prefix, so every token sees
exactly the context and positions it has in its own sequence. Several short groups share a row
(first-fit decreasing into rows as wide as the longest group; document ids keep them apart), so
rows carry little padding and the row width, hence the attention cost, stays that of one group.
Nothing assumes a prompt boundary: the prefix is the longest run of tokens all sequences of the
group share (rlhf.data.templates.tokenize_prompt_group makes that the whole prompt), and at least
one token of each sequence stays in its suffix, so every score is read inside its own segment.
"""

from __future__ import annotations

import torch

from rlhf.core.errors import ConfigError

PAD_SEGMENT = -1
MASKED_ATTENTION = ("sdpa", "eager")
"""Attention implementations that take an arbitrary 4D mask, which packed rows need."""


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


def first_fit_decreasing(lengths: list[int], width: int) -> list[list[int]]:
    """Indices of `lengths` per row, longest first, each into the first row with room for it."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        row = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if row is None:
            rows.append([])
            room.append(width)
            row = len(rows) - 1
        rows[row].append(i)
        room[row] -= lengths[i]
    return rows


def pack_groups(groups: list[list[list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Packed rows as wide as the longest group; `score_index` [N, 2] = (row, column) of each
    sequence's last token, in the order of the flattened groups. `document_ids` numbers the groups
    within a row (-1 = padding)."""
    packed = [pack_group(g) for g in groups]
    width = max(len(ids) for ids, *_ in packed)
    rows = first_fit_decreasing([len(ids) for ids, *_ in packed], width)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    segment_ids = torch.full((len(rows), width), PAD_SEGMENT, dtype=torch.long)
    document_ids = torch.full((len(rows), width), PAD_SEGMENT, dtype=torch.long)
    where: dict[int, tuple[int, int]] = {}  # group -> (row, first column)
    for r, members in enumerate(rows):
        start = 0
        for doc, g in enumerate(members):
            ids, positions, segments, _ = packed[g]
            end = start + len(ids)
            input_ids[r, start:end] = torch.as_tensor(ids)
            position_ids[r, start:end] = torch.as_tensor(positions)
            segment_ids[r, start:end] = torch.as_tensor(segments)
            document_ids[r, start:end] = doc
            where[g] = (r, start)
            start = end
    score_index = [(where[g][0], where[g][1] + col) for g, (*_, last) in enumerate(packed) for col in last]
    return {"input_ids": input_ids, "position_ids": position_ids, "segment_ids": segment_ids,
            "document_ids": document_ids, "score_index": torch.tensor(score_index, dtype=torch.long)}


def token_columns(seqs: list[list[int]], last_columns: list[int]) -> list[list[int]]:
    """Column of every token of each sequence of one packed group, given each sequence's last
    column (pack_groups' score_index): the prefix columns, then the sequence's own suffix."""
    prefix = common_prefix_length(seqs)
    starts = [last - (len(seq) - prefix) + 1 for seq, last in zip(seqs, last_columns)]
    group_start = starts[0] - prefix
    return [list(range(group_start, group_start + prefix)) + list(range(start, start + len(seq) - prefix))
            for seq, start in zip(seqs, starts)]


def model_attention_mask(allowed: torch.Tensor, attention: str, dtype: torch.dtype) -> torch.Tensor:
    """The 4D mask a HF attention takes: `allowed` itself for sdpa, an additive float mask (0 where
    allowed, the dtype's minimum elsewhere) for eager."""
    if attention == "sdpa":
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


def packed_model_mask(model, allowed: torch.Tensor, key: str) -> torch.Tensor:
    """The 4D mask `model` takes for packed rows (`allowed` from packed_attention_mask); a ConfigError
    naming `key`, the setting that turns packing off, when its attention cannot take one."""
    attention = getattr(model.config, "_attn_implementation", "eager")
    if attention not in MASKED_ATTENTION:
        raise ConfigError(key, f"packed rows need a 4D attention mask, which {attention!r} attention does not take; "
                               f"use one of {MASKED_ATTENTION} or {key}=false")
    return model_attention_mask(allowed, attention, next(model.parameters()).dtype)


def packed_attention_mask(segment_ids: torch.Tensor, document_ids: torch.Tensor) -> torch.Tensor:
    """[R, 1, L, L] bool, True = may attend: causal, within the own group, and only to its prefix
    or the own segment.

    Padding attends to padding (never to a real token, and no row is all-False, which would give
    NaN in softmax); real tokens never attend to padding.
    """
    length = segment_ids.size(1)
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_ids.device).tril()
    keys, queries = segment_ids.unsqueeze(1), segment_ids.unsqueeze(2)
    same_document = document_ids.unsqueeze(1) == document_ids.unsqueeze(2)
    visible = (keys == queries) | ((keys == 0) & (queries != PAD_SEGMENT))
    return (visible & same_document & causal).unsqueeze(1)
