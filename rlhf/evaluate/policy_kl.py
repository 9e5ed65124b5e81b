"""KL of a policy to a reference (the SFT model) along given replies (docs/algorithms.md §5.2):

    KL(x, y) = Σ_t  Σ_v  π(v | x, y_<t) · [log π(v | x, y_<t) − log π_ref(v | x, y_<t)]

over the reply's positions t (its tokens as the chat template closes them), the exact KL of the next-token
distributions summed along the reply, from one forward of each model. On the policy's own greedy replies it
is the x-axis of the KL-gold frontier: never negative, and free of the sampling noise of a log-ratio estimate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from rlhf.data.templates import IGNORE_INDEX, get_template, tokenize_prompt_response


def summed_token_kl(logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, T, V] logits of the policy and the reference, [B, T] mask -> [B]: Σ_t mask_t · KL(p_t ‖ q_t)."""
    logp, logq = F.log_softmax(logits.float(), dim=-1), F.log_softmax(ref_logits.float(), dim=-1)
    per_token = (logp.exp() * (logp - logq)).sum(dim=-1)
    return (per_token * mask).sum(dim=-1)


def reply_batch(tokenizer, prompts: Sequence[list[dict]], responses: Sequence[str], template: str,
                max_length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, attention mask and the mask of the positions whose logits predict a reply token."""
    chat = get_template(template, tokenizer.eos_token)
    rows = [tokenize_prompt_response(tokenizer, p, r, chat, max_length, min_prompt_tokens=max_length // 2)
            for p, r in zip(prompts, responses)]
    width = max(len(row["input_ids"]) for row in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    predicts = torch.zeros((len(rows), width), dtype=torch.float)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[i, :n] = torch.tensor(row["input_ids"])
        attention[i, :n] = 1
        labels = torch.tensor(row["labels"])
        predicts[i, : n - 1] = (labels[1:] != IGNORE_INDEX).float()   # logits at t predict token t + 1
    return ids, attention, predicts


@torch.no_grad()
def reply_kl(policy, reference, tokenizer, prompts: Sequence[list[dict]], responses: Sequence[str],
             template: str = "chatml", max_length: int = 1024, batch_size: int = 8) -> list[float]:
    """KL(x, y) of `policy` to `reference` for each (prompt, reply), in nats."""
    out: list[float] = []
    for start in range(0, len(prompts), batch_size):
        ids, attention, predicts = reply_batch(tokenizer, prompts[start:start + batch_size],
                                               responses[start:start + batch_size], template, max_length)
        logits = policy(input_ids=ids, attention_mask=attention).logits
        ref_logits = reference(input_ids=ids, attention_mask=attention).logits
        out += summed_token_kl(logits, ref_logits, predicts).tolist()
    return out
