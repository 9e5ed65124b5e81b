"""The response forward with each prompt computed once for all of its samples.

Group algorithms sample G responses per prompt, and the plain forward (rollout.forward_response)
runs the prompt G times in every reference, recomputed-log-prob and training pass. Here the rows
of a batch that share a prompt become one packed sequence [prompt, r1, r2, ...] (rlhf.data.packing:
each response attends to the prompt and to itself, with the positions it has in its own row), so
the prompt's tokens are computed once per group. Every response token sees exactly the context and
positions of the plain forward, so log-probs, logits and hidden states agree with it up to float
rounding, and so do gradients (tests/rl/test_shared_prompt.py). The saving is the share of prompt
tokens: (P + R) / (P / G + R) fewer tokens for prompts of P and responses of R tokens.

Rows are grouped by their real prompt tokens, not by position, so any row order and any cut into
micro-batches is correct; a row whose prompt is unique in the batch is packed alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlhf.core.token_losses import logprobs_from_logits
from rlhf.data.packing import pack_groups, packed_attention_mask, packed_model_mask, token_columns

@dataclass
class PackedRollout:
    input_ids: torch.Tensor  # [N, L] packed rows
    position_ids: torch.Tensor  # [N, L]
    allowed: torch.Tensor  # [N, 1, L, L] bool: who may attend to whom
    predictor: torch.Tensor  # [T, 2] (packed row, column) of the state that predicts each real response token
    target: torch.Tensor  # [T, 2] (batch row, response column) of that token


def real_prompts(query_ids: torch.Tensor, query_mask: torch.Tensor) -> list[list[int]]:
    """Each row's prompt tokens without its left padding."""
    return [[t for t, m in zip(ids, mask) if m] for ids, mask in zip(query_ids.tolist(), query_mask.tolist())]


def prompt_groups(prompts: list[list[int]]) -> list[list[int]]:
    """Rows grouped by their prompt tokens, groups in order of first appearance."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for row, prompt in enumerate(prompts):
        groups.setdefault(tuple(prompt), []).append(row)
    return list(groups.values())


def pack_rollout(query_ids: torch.Tensor, query_mask: torch.Tensor, response_ids: torch.Tensor,
                 response_mask: torch.Tensor, pad_token_id: int) -> PackedRollout:
    """Pack a left-padded prompt / right-padded response batch (rollout.py's layout) by prompt."""
    prompts = real_prompts(query_ids, query_mask)
    groups = prompt_groups(prompts)
    lengths = response_mask.sum(dim=1).tolist()
    responses = [ids[:n] for ids, n in zip(response_ids.tolist(), lengths)]
    sequences = [[prompts[row] + responses[row] for row in group] for group in groups]
    packed = pack_groups(sequences, pad_token_id)
    last = packed["score_index"].tolist()  # (packed row, column of each sequence's last token), groups flattened
    predictor, target, k = [], [], 0
    for group, seqs in zip(groups, sequences):
        ends = last[k:k + len(group)]
        columns = token_columns(seqs, [col for _, col in ends])
        for row, seq, cols, (packed_row, _) in zip(group, seqs, columns, ends):
            start = len(prompts[row])
            for t in range(len(responses[row])):  # token start + t is predicted by the state at start + t - 1
                predictor.append((packed_row, cols[start + t - 1]))
                target.append((row, t))
        k += len(group)
    device = query_ids.device
    return PackedRollout(packed["input_ids"].to(device), packed["position_ids"].to(device),
                         packed_attention_mask(packed["segment_ids"], packed["document_ids"]).to(device),
                         torch.tensor(predictor, dtype=torch.long, device=device),
                         torch.tensor(target, dtype=torch.long, device=device))


def forward_response_shared(model, query_ids: torch.Tensor, query_mask: torch.Tensor, response_ids: torch.Tensor,
                            response_mask: torch.Tensor, temperature: float = 1.0, with_hidden: bool = False,
                            with_logits: bool = True, pad_token_id: int = 0):
    """rollout.forward_response's (logprobs [B,R], logits [B,R,V] | None, hidden [B,R,H] | None) from
    one packed forward. Padding positions hold 0 (log-probs, logits, hidden); with_logits=False skips
    building the [B, R, V] tensor when only the log-probs are needed."""
    packed = pack_rollout(query_ids, query_mask, response_ids, response_mask, pad_token_id)
    mask = packed_model_mask(model, packed.allowed, "stage.module.update.shared_prompt")
    # the LM head only at the positions that predict a response token: a packed row also holds the
    # prompt, whose [L, V] logits nobody reads (logits_to_keep=1 keeps the model's own head call tiny)
    out = model(input_ids=packed.input_ids, attention_mask=mask,
                position_ids=packed.position_ids, output_hidden_states=True, logits_to_keep=1, use_cache=False)
    rows, cols = packed.predictor[:, 0], packed.predictor[:, 1]
    states = out.hidden_states[-1][rows, cols]
    logits = model.get_output_embeddings()(states).float()
    if temperature != 1.0:
        logits = logits / temperature
    b, t = packed.target[:, 0], packed.target[:, 1]
    token_logps = logprobs_from_logits(logits, response_ids[b, t])
    shape = response_ids.shape
    logprobs = token_logps.new_zeros(shape).index_put((b, t), token_logps)
    full_logits = logits.new_zeros(*shape, logits.size(-1)).index_put((b, t), logits) if with_logits else None
    hidden = states.new_zeros(*shape, states.size(-1)).index_put((b, t), states) if with_hidden else None
    return logprobs, full_logits, hidden
