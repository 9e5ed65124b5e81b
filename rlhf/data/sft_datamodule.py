"""SFT data: sources -> mixture -> 95/5 split -> template + response-only labels -> batches."""

from __future__ import annotations

import logging
from collections import Counter

from datasets import Dataset

from rlhf.data.collate import CausalLMCollator
from rlhf.data.mixture import mix_sources, split_train_val
from rlhf.data.source_spec import load_sources
from rlhf.data.split_datamodule import SplitDataModule
from rlhf.data.templates import IGNORE_INDEX, get_template, tokenize_conversation
from rlhf.core.errors import DataError
from rlhf.data.config import SFTDataConfig

log = logging.getLogger(__name__)

EMPTY, CUT = "an empty response", "no response token left after truncation"


class SFTDataModule(SplitDataModule):
    CONFIG = SFTDataConfig

    def __init__(self, tokenizer, **settings):
        super().__init__(tokenizer, **settings)
        self.mixture_total = self.cfg.mixture_total
        self.invalid = self.cfg.invalid   # empty response / no response token left after truncation: skip (logged) or error
        self.tallies: dict = {}           # "data.sources.<i>" -> its records read, parsed, skipped (SourceTally)
        self.skipped: Counter = Counter()   # reason -> examples dropped by the last setup (both splits)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        template = get_template(self.template_name, self.require_tokenizer().eos_token)
        groups, self.tallies = load_sources(self.sources, kind="conversation", seed=self.seed)
        self.skipped = Counter()
        weights = [float(spec.weight) for spec in self.sources]
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
        for problem, places in ((EMPTY, empty), (CUT, truncated)):
            if not places:
                continue
            self.skipped[problem] += len(places)
            if self.invalid == "error":
                raise DataError(f"{split} example from {places[0]} has {problem} (data.max_length={self.max_length}; "
                                f"data.invalid=skip skips such examples; {len(places)} of {len(records)} are affected)")
            log.warning("%s: skipped %d of %d examples with %s (data.max_length=%d; first: %s)", split, len(places),
                        len(records), problem, self.max_length, ", ".join(places[:3]))
        if not kept:
            raise DataError(f"no {split} example has a response token left after truncation "
                            "(raise data.max_length or check the sources)")
        return Dataset.from_list(kept)

    def collator(self) -> CausalLMCollator:
        return CausalLMCollator(self.tokenizer.pad_token_id)
