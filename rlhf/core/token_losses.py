"""Token-level pieces every stage shares: masked means, the causal-LM loss, log-probs and entropy
from logits. Pure tensor functions (docs/methods.md §2.2, §4.2, §4.11).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Σ x·m / Σ m over `dim` (all elements when None); 0 where Σ m = 0.

    Padding and post-EOS tokens must not move any loss or statistic (docs/methods.md §4.2), and an
    all-padding slice must give 0 rather than NaN so one empty row cannot poison a whole step.
    Values under m = 0 are never read, so NaN/inf padding is harmless.
    """
    weights = mask.to(x.dtype)
    weighted = torch.where(weights != 0, x * weights, torch.zeros_like(x))
    if dim is None:
        total, count = weighted.sum(), weights.sum()
    else:
        total, count = weighted.sum(dim), weights.sum(dim)
    safe_count = torch.where(count != 0, count, torch.ones_like(count))
    return torch.where(count != 0, total / safe_count, torch.zeros_like(total))


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Causal-LM cross-entropy: mean over kept t of −log p(labels[t+1] | logits[t]).

    Used for SFT (docs/methods.md §2.2: prompt/template/padding labels are −100) and for the PTX term
    (§4.9). The shift lives here so callers pass labels aligned with input_ids. A batch whose labels
    are all −100 gives 0 (with a graph) instead of NaN.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"masked_lm_loss expects logits [B,T,V] and labels [B,T]; got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    shifted_logits = logits[:, :-1, :].reshape(-1, logits.size(-1))
    shifted_labels = labels[:, 1:].reshape(-1)
    total = F.cross_entropy(
        shifted_logits.float(), shifted_labels, ignore_index=IGNORE_INDEX, reduction="sum"
    )
    count = (shifted_labels != IGNORE_INDEX).sum().clamp_min(1)
    return total / count


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """H = logsumexp(z) − Σ_v softmax(z)_v z_v over the last axis.

    Logged per token (docs/methods.md §4.11)."""
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) = z[token] − logsumexp(z), for logits [..., V] and tokens [...].

    Avoids materialising log_softmax over the vocabulary: autograd keeps only the logits (alive
    anyway) and one logsumexp per position, which matters at V ≈ 32k–150k. Precision follows the
    logits' dtype; upcast them first if fp32 log-ratios are needed.
    """
    if tokens.shape != logits.shape[:-1]:
        raise ValueError(
            f"tokens must match the logits without their vocabulary axis {tuple(logits.shape[:-1])}; "
            f"got {tuple(tokens.shape)}"
        )
    picked = torch.gather(logits, -1, tokens.unsqueeze(-1).long()).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)
