"""Absolute-RM data: (prompt, response, labels) -> target y ∈ [0, 1] + loss weight (docs/methods.md §3.5-3.7).

A record is {"prompt": str | messages, "response": str, "labels": {criterion: value}} aggregated
with a weight preset (w2 / w3 / quality, rlhf.data.absolute_labels) or a dict, or {"label": y}
used as is. The imbalance variant (`logistic+augment+under_s_8k+wgt_s_075`, rlhf.data.imbalance)
touches the training split only, so validation keeps the natural bucket mix the thesis reports.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import torch

from rlhf.data.absolute_labels import aggregate_labels
from rlhf.data.collate import length_mask, pad_sequences
from rlhf.data.imbalance import apply_variant, parse_variant
from rlhf.data.jsonl import iter_source
from rlhf.data.mixture import split_train_val
from rlhf.data.reward_data import RewardDataModule
from rlhf.data.templates import get_template, tokenize_prompt_response
from rlhf.core.errors import DataError
from rlhf.core.schema import as_config
from rlhf.data.config import AbsoluteDataConfig, AbsoluteSourceConfig

log = logging.getLogger(__name__)


def parse_record(record, weights, where: tuple[str, int]) -> dict | None:
    """{"prompt": messages, "response", "score"}, or None when aggregation drops it (no quality)."""
    path, line = where
    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object, got {type(record).__name__}", source=path, record=line)
    prompt, response = record.get("prompt"), record.get("response")
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt or not isinstance(prompt[-1], dict) or prompt[-1].get("role") != "user":
        raise DataError("'prompt' must be a string or a list of messages ending with a user turn",
                        source=path, record=line)
    if not isinstance(response, str):
        raise DataError("'response' must be a string", source=path, record=line)
    if isinstance(record.get("labels"), dict):
        try:
            score = aggregate_labels(record["labels"], weights)
        except DataError as err:
            raise DataError(str(err), source=path, record=line) from err
    elif "label" in record:
        score = record["label"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or math.isnan(score) or not 0 <= score <= 1:
            raise DataError(f"'label' is {score!r}; need a number in [0, 1]", source=path, record=line)
    else:
        raise DataError("need 'labels' {criterion: value in [0, 1]} or 'label' (a number in [0, 1])",
                        source=path, record=line)
    if score is None:
        return None
    return {"prompt": prompt, "response": response, "score": float(score)}


def load_absolute_records(spec: AbsoluteSourceConfig | Mapping, weights, key: str = "data.sources") -> list[dict]:
    spec = as_config(AbsoluteSourceConfig, spec, key)
    out, unlabelled = [], []
    for line, record in iter_source(spec.path, spec.split):
        parsed = parse_record(record, weights, (str(spec.path), line))
        if parsed is None:
            unlabelled.append(line)
        else:
            out.append(parsed)
        if spec.limit is not None and len(out) >= spec.limit:
            break
    if unlabelled:
        log.warning("%s: skipped %d records without a quality label (records %s)", spec.path, len(unlabelled),
                    ", ".join(map(str, unlabelled[:5])) + (", ..." if len(unlabelled) > 5 else ""))
    if not out:
        raise DataError("no usable record (every record lacks a quality label?)", source=str(spec.path))
    return out


class AbsoluteCollator:
    """input_ids/attention_mask [N, T], target [N], weight [N]; masks from lengths."""

    def __init__(self, pad_token_id: int, padding_side: str = "right"):
        self.pad_token_id = pad_token_id
        self.padding_side = padding_side

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("empty batch: the dataloader produced no examples")
        seqs = [f["input_ids"] for f in features]
        input_ids = pad_sequences(seqs, self.pad_token_id, self.padding_side)
        return {
            "input_ids": input_ids,
            "attention_mask": length_mask([len(s) for s in seqs], input_ids.size(1), self.padding_side),
            "target": torch.tensor([f["score"] for f in features], dtype=torch.float32),
            "weight": torch.tensor([f["weight"] for f in features], dtype=torch.float32),
        }


class AbsoluteDataModule(RewardDataModule):
    CONFIG = AbsoluteDataConfig

    def __init__(self, tokenizer, **settings):
        super().__init__(tokenizer, **settings)
        weights = self.cfg.label_weights
        self.label_weights = weights if isinstance(weights, str) else dict(weights)
        self.variant = parse_variant(self.cfg.variant or "")
        self.weight_mode = self.cfg.weight_mode
        self.augmenter = self.cfg.augmenter
        self.train_records = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        template = get_template(self.template_name, self.require_tokenizer().eos_token)
        records = [r for i, spec in enumerate(self.sources)
                   for r in load_absolute_records(spec, self.label_weights, f"data.sources.{i}")]
        train, val = split_train_val(records, self.val_fraction, self.seed)
        self.train_records = apply_variant(train, self.variant, self.seed, self.augmenter, self.weight_mode)
        self.train_set = [self.encode(r, template) for r in self.train_records]
        self.val_set = [self.encode({**r, "weight": 1.0}, template) for r in val]

    def encode(self, record: dict, template) -> dict:
        ids = tokenize_prompt_response(self.tokenizer, record["prompt"], record["response"], template,
                                       self.max_length, self.min_prompt_tokens)["input_ids"]
        return {"input_ids": ids, "score": record["score"], "weight": float(record.get("weight", 1.0))}

    def collator(self) -> AbsoluteCollator:
        return AbsoluteCollator(self.tokenizer.pad_token_id, self.padding_side)
