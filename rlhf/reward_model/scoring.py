"""Scoring with a reward model: last-real-token pooling and the saved-RM loader used by PPO and eval.

The score is the head applied to the hidden state of the last token whose attention-mask entry is
1, with position ids counted from the mask. So neither the pad id, nor how much padding there is,
nor its side moves the score: the thesis saw HF reward scores shift with the number of pad tokens
(thesis §8.2; docs/methods.md §3.1, §8.3.18).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import PeftModel

from rlhf.data.collate import length_mask, pad_sequences
from rlhf.data.packing import packed_attention_mask, packed_model_mask
from rlhf.data.templates import get_template, tokenize_prompt_response
from rlhf.core.errors import ConfigError, DataError
from rlhf.core.models import load_sequence_classifier, load_tokenizer

STATS_FILE = "reward_stats.json"
OUTPUTS = ("logit", "prob")


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Per row, the largest position t with mask[t] = 1 (works for left and right padding)."""
    positions = torch.arange(attention_mask.size(1), device=attention_mask.device).expand_as(attention_mask)
    masked = torch.where(attention_mask.bool(), positions, torch.full_like(positions, -1))
    last = masked.max(dim=1).values
    if bool((last < 0).any()):
        raise ValueError("a row of the batch has no real token (all-zero attention mask)")
    return last


def split_head(model) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(transformer body, scalar head) of an HF *ForSequenceClassification, LoRA-wrapped or not."""
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    return getattr(base, base.base_model_prefix), base.score


def head_outputs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 position_ids: torch.Tensor) -> torch.Tensor:
    """The scalar head at every position, float32 [B, T], from one call of the whole model.

    Calling the root model (not its body and head one by one) lets FSDP2 gather the parameters its
    root unit holds (embeddings, final norm, head); HF's own pad-id pooling is left unused.
    """
    _, head = split_head(model)
    captured = []
    handle = head.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
    finally:
        handle.remove()
    return captured[-1].squeeze(-1).float()


def sequence_scores(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """r = head(h[last real token]) per row, float32 [B]; positions restart at 0 at the first real token."""
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
    values = head_outputs(model, input_ids, attention_mask, position_ids)
    last = last_token_index(attention_mask)
    return values[torch.arange(values.size(0), device=values.device), last]


def packed_scores(model, input_ids: torch.Tensor, position_ids: torch.Tensor, segment_ids: torch.Tensor,
                  document_ids: torch.Tensor, score_index: torch.Tensor) -> torch.Tensor:
    """Scores of shared-prefix packed rows (rlhf.data.packing), float32 [N] in flattened-group order.

    Equal to sequence_scores on the unpacked sequences up to float rounding: each token sees the
    same tokens at the same positions. Needs an attention that takes an arbitrary 4D mask.
    """
    body, _ = split_head(model)
    mask = packed_model_mask(body, packed_attention_mask(segment_ids, document_ids), "data.shared_prefix")
    return head_outputs(model, input_ids, mask, position_ids)[score_index[:, 0], score_index[:, 1]]


def batch_scores(model, batch: dict) -> torch.Tensor:
    """One score per sequence of a reward batch, packed (has `segment_ids`) or padded."""
    if "segment_ids" in batch:
        return packed_scores(model, batch["input_ids"], batch["position_ids"], batch["segment_ids"],
                             batch["document_ids"], batch["score_index"])
    return sequence_scores(model, batch["input_ids"], batch["attention_mask"])


def as_messages(prompt) -> list[dict]:
    """A plain-string prompt becomes one user turn; a message list is checked and kept."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt or not all(isinstance(m, dict) for m in prompt):
        raise DataError(f"a prompt is a string or a non-empty list of messages; got {type(prompt).__name__}")
    if prompt[-1].get("role") != "user":
        raise DataError(f"a prompt must end with a user turn; the last message has role {prompt[-1].get('role')!r}")
    return prompt


class RewardScorer:
    """A saved RM behind the reward protocol of rlhf/rewards/build.py: score(prompts, responses) -> [B]."""

    def __init__(self, model, tokenizer, stats: dict, output: str = "logit", device: str = "cpu",
                 batch_size: int = 16):
        if output not in OUTPUTS:
            raise ConfigError("reward.output", f"unknown output {output!r}; allowed: {', '.join(OUTPUTS)}")
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.stats = {"mean": float(stats.get("mean", 0.0)), "std": float(stats.get("std", 1.0))}
        self.kind = stats.get("kind", "preference")
        self.template = get_template(stats.get("template", "chatml"), tokenizer.eos_token)
        self.max_length = int(stats.get("max_length", 2048))
        self.min_prompt_tokens = int(stats.get("min_prompt_tokens", 256))
        self.output = output
        self.device = device
        self.batch_size = batch_size

    def encode(self, prompt, response: str) -> list[int]:
        if not isinstance(response, str):
            raise DataError(f"a response is a string; got {type(response).__name__}")
        return tokenize_prompt_response(self.tokenizer, as_messages(prompt), response, self.template,
                                        self.max_length, self.min_prompt_tokens)["input_ids"]

    @torch.no_grad()
    def score(self, prompts: list, responses: list[str]) -> torch.Tensor:
        """Logit z, or σ(z) when output="prob" (docs/methods.md §3.9: logits are the RL default)."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses; pass one prompt per response")
        encoded = [self.encode(p, r) for p, r in zip(prompts, responses)]
        # Length-sorted batches waste little padding; pooling is padding-invariant, so order is free.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = torch.empty(len(encoded), dtype=torch.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            seqs = [encoded[i] for i in chunk]
            ids = pad_sequences(seqs, self.tokenizer.pad_token_id).to(self.device)
            mask = length_mask([len(s) for s in seqs], ids.size(1)).to(self.device)
            out[chunk] = sequence_scores(self.model, ids, mask).cpu()
        return torch.sigmoid(out) if self.output == "prob" else out


def resolve_model_dir(path: str | Path) -> Path:
    """The RM folder itself, or the `merged/` folder inside an export directory."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    if (path / "merged" / "config.json").is_file():
        return path / "merged"
    raise DataError(f"holds no saved model (no config.json in it or in its merged/ folder); give the export "
                    "dir of a reward model (stage=reward)", source=str(path))


def load_reward_model(path: str | Path, output: str = "logit", device: str = "cpu", batch_size: int = 16,
                      trust_remote_code: bool = False) -> RewardScorer:
    """Load an exported RM folder (safetensors only: a pickled checkpoint can run code on load)."""
    folder = resolve_model_dir(path)
    stats_path = folder / STATS_FILE
    if not stats_path.is_file():
        raise DataError(f"not a reward model: no {STATS_FILE} (a policy or base model has none); give the export of "
                        "stage=reward or reward_absolute (RewardModule.export)", source=str(folder))
    stats = json.loads(stats_path.read_text())
    model = load_sequence_classifier(folder, "float32", trust_remote_code=trust_remote_code)
    tokenizer = load_tokenizer(folder, trust_remote_code=trust_remote_code)
    return RewardScorer(model, tokenizer, stats, output, device, batch_size)
