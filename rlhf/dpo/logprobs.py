"""Sequence log-probs log π(y | x) = Σ_t log π(y_t | x, y_<t) of every response of a preference batch.

One forward serves all responses of a batch in either layout of rlhf.data.preference_datamodule:
padded rows, or shared-prefix packed rows (rlhf.data.packing), where chosen and rejected share one
prompt forward and each token still sees exactly its own sequence's context and positions. The
collator's response_index says where the predictor of each response token sits, so the two layouts
give the same sums up to float rounding (docs/algorithms.md §0: sums over response tokens).
"""

from __future__ import annotations

import torch

from rlhf.core.token_losses import logprobs_from_logits
from rlhf.data.packing import packed_attention_mask, packed_model_mask


def _forward_logits(model, batch: dict) -> torch.Tensor:
    if "segment_ids" not in batch:
        mask = batch["attention_mask"]
        position_ids = (mask.long().cumsum(-1) - 1).clamp_min(0)
        return model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=position_ids,
                     use_cache=False).logits
    mask = packed_model_mask(model, packed_attention_mask(batch["segment_ids"], batch["document_ids"]),
                             "data.shared_prefix")
    return model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=batch["position_ids"],
                 use_cache=False).logits


def response_logprobs(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(sums [N], lengths [N]): summed float32 log-probs of each sequence's response tokens and their count.

    Only the response positions' logits are gathered before the log-softmax, so the [M, V] float32
    upcast costs the response tokens, not the whole padded batch. Every sequence must have ≥ 1
    response token (the data module drops pairs that do not): its sum would be a "perfect" 0.
    """
    logits = _forward_logits(model, batch)
    index = batch["response_index"]
    token_logps = logprobs_from_logits(logits[index[:, 0], index[:, 1]].float(), batch["response_target"])
    owner = batch["response_sequence"]
    n = batch["sequence_uid"].numel()
    sums = token_logps.new_zeros(n).index_add(0, owner, token_logps)
    lengths = torch.bincount(owner, minlength=n)
    if bool((lengths == 0).any()):
        rows = torch.nonzero(lengths == 0).flatten().tolist()
        raise ValueError(f"sequences {rows} of the batch have no response token: an empty response has no "
                         "sequence log-prob (rlhf.data.preference_datamodule drops such pairs)")
    return sums, lengths
