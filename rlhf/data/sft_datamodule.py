"""SFT data: sources -> mixture -> 95/5 split -> template + response-only labels -> batches."""

from __future__ import annotations

import logging

from datasets import Dataset

from rlhf.data.collate import CausalLMCollator
from rlhf.data.mixture import mix_sources, split_train_val
from rlhf.data.source_spec import load_source
from rlhf.data.split_datamodule import SplitDataModule
from rlhf.data.templates import IGNORE_INDEX, get_template, tokenize_conversation
from rlhf.core.errors import ConfigError, DataError
from rlhf.core.models import load_backbone_tokenizer

log = logging.getLogger(__name__)
INVALID_ACTIONS = ("skip", "error")


class SFTDataModule(SplitDataModule):
    def __init__(self, model: dict, sources: list[dict], template: str = "chatml", max_length: int = 2048,
                 val_fraction: float = 0.05, batch_size: int = 4, eval_batch_size: int | None = None,
                 mixture_total: int | None = None, num_workers: int = 0, seed: int = 0, invalid: str = "skip"):
        if invalid not in INVALID_ACTIONS:
            raise ConfigError("data.invalid", f"must be one of {list(INVALID_ACTIONS)}, got {invalid!r}")
        super().__init__(model, sources, template, max_length, val_fraction, batch_size, eval_batch_size,
                         num_workers, seed)
        self.mixture_total = mixture_total
        self.invalid = invalid   # empty response / no response token left after truncation: skip (logged) or error

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.tokenizer = load_backbone_tokenizer(self.model_spec)
        template = get_template(self.template_name, self.tokenizer.eos_token)
        groups = [load_source(spec, kind="conversation", seed=self.seed) for spec in self.sources]
        weights = [float(spec.get("weight", 1.0)) for spec in self.sources]
        records = mix_sources(groups, weights, self.mixture_total, self.seed)
        train, val = split_train_val(records, self.val_fraction, self.seed)

        def encode(record):
            return tokenize_conversation(self.tokenizer, record["messages"], template, self.max_length)

        self.train_set = self._encode(train, encode, "train")
        self.val_set = self._encode(val, encode, "validation") if val else None

    def _encode(self, records: list[dict], encode, split: str) -> Dataset:
        """Examples with nothing to learn are never dropped silently: an empty final response, or a
        response cut away entirely by `max_length`, is a counted, logged skip or (invalid=error) an
        error naming the record."""
        kept, empty, truncated = [], [], []
        for record in records:
            where = record.get("origin", "a record")
            if not record["messages"][-1]["content"].strip():
                empty.append(where)
                continue
            encoded = encode(record)
            if all(label == IGNORE_INDEX for label in encoded["labels"]):
                truncated.append(where)
                continue
            kept.append(encoded)
        for problem, places in (("an empty response", empty),
                                (f"no response token left after truncation to data.max_length={self.max_length}",
                                 truncated)):
            if not places:
                continue
            if self.invalid == "error":
                raise DataError(f"{split} example from {places[0]} has {problem} (data.invalid=skip skips such "
                                f"examples; {len(places)} of {len(records)} are affected)")
            log.warning("%s: skipped %d of %d examples with %s (first: %s)", split, len(places), len(records),
                        problem, ", ".join(places[:3]))
        if not kept:
            raise DataError(f"no {split} example has a response token left after truncation "
                            "(raise data.max_length or check the sources)")
        return Dataset.from_list(kept)

    def collator(self) -> CausalLMCollator:
        return CausalLMCollator(self.tokenizer.pad_token_id)
