"""RL prompts for PPO (artifact A8, docs/methods.md §4.2) and the optional PTX stream (docs/methods.md §4.9).

Batches are plain lists — `{"ids": [str], "prompts": [messages], "input_ids": [[int]],
"metadata": [dict]}` — since rollout pads them itself. A prompt's metadata, what rewards read, is
{"id": its id} plus the fields its source maps (data.sources.<i>.metadata_fields) or brings
(builtin: arithmetic). The loaders shard by rank themselves and carry their position in their
state, so Lightning's checkpoint resumes at the very next batch (no restart of the epoch).
"""

from __future__ import annotations

import logging
from collections import Counter

import lightning as L
import torch

from rlhf.data.collate import CausalLMCollator
from rlhf.data.resumable_loader import ResumableLoader, cyclic_batch
from rlhf.data.source_spec import load_source, load_sources
from rlhf.data.templates import IGNORE_INDEX, get_template, tokenize_conversation
from rlhf.core.errors import ConfigError, DataError
from rlhf.core.schema import as_config
from rlhf.data.config import PromptDataConfig
from rlhf.data.prompt_encoding import encode_prompt

log = logging.getLogger(__name__)

OVERLONG = "longer than data.max_prompt_tokens"


def prompt_batch(records: list[dict]) -> dict:
    return {"ids": [r["id"] for r in records], "prompts": [r["prompt"] for r in records],
            "input_ids": [r["input_ids"] for r in records],
            "metadata": [r.get("metadata") or {"id": r["id"]} for r in records]}


class PromptLoader(ResumableLoader):
    """Prompt batches, always full (`drop_last`), so the rollout batch is the same on every rank."""

    def __init__(self, records: list[dict], batch_size: int, shuffle: bool = True, seed: int = 0):
        super().__init__(records, batch_size, prompt_batch, seed=seed, shuffle=shuffle, drop_last=True)


class PTXStream:
    """Endless SFT batches for the PTX term, cycling independently of the prompts (docs/methods.md §4.9)."""

    def __init__(self, examples: list[dict], batch_size: int, pad_token_id: int, seed: int = 0):
        if not examples:
            raise DataError("the PTX corpus has no example with a trainable token")
        self.examples, self.batch_size, self.seed = examples, batch_size, seed
        self.collate = CausalLMCollator(pad_token_id)
        self.served = 0

    def next_batch(self) -> dict[str, torch.Tensor]:
        picked = cyclic_batch(len(self.examples), self.served, self.batch_size, self.seed, stride=7919)
        self.served += 1
        return self.collate([self.examples[i] for i in picked])

    def state_dict(self) -> dict:
        return {"served": self.served}

    def load_state_dict(self, state: dict) -> None:
        self.served = int(state["served"])


class PromptDataModule(L.LightningDataModule):
    """`tokenizer` is the stage module's own (the policy's); the settings are PromptDataConfig's fields."""

    def __init__(self, tokenizer, **settings):
        super().__init__()
        self.cfg = cfg = as_config(PromptDataConfig, settings, "data")
        self.tokenizer = tokenizer
        self.sources = list(cfg.sources)
        self.template_name = cfg.template
        self.batch_size = cfg.batch_size
        self.max_prompt_tokens = cfg.max_prompt_tokens
        self.overlong = cfg.overlong
        self.shuffle = cfg.shuffle
        self.seed = cfg.seed
        self.ptx_cfg = cfg.ptx if cfg.ptx is not None and cfg.ptx.sources else None
        self.records: list[dict] | None = None
        self.ptx_examples: list[dict] | None = None
        self.tallies: dict = {}             # "data.sources.<i>" -> its records read, parsed, skipped (SourceTally)
        self.skipped: Counter = Counter()   # reason -> prompts dropped by the last setup

    def setup(self, stage: str | None = None) -> None:
        if self.records is not None:
            return
        if self.tokenizer is None:
            raise ConfigError("data", "PromptDataModule was built without a tokenizer: pass the stage module's "
                                      "(rlhf.train.fit does: instantiate(cfg.data, tokenizer=module.tokenizer))")
        template = get_template(self.template_name, self.tokenizer.eos_token)
        self.records, dropped = [], 0
        per_source, self.tallies = load_sources(self.sources, kind="prompt", seed=self.seed)
        for index, records in enumerate(per_source):
            for number, record in enumerate(records):
                ids = encode_prompt(self.tokenizer, template, record["prompt"], self.max_prompt_tokens, self.overlong)
                if ids is None:
                    dropped += 1
                    continue
                prompt_id = str(record.get("id", f"{index}:{number}"))
                self.records.append({"id": prompt_id, "prompt": record["prompt"], "input_ids": ids,
                                     "metadata": {**(record.get("metadata") or {}), "id": prompt_id}})
        self.skipped = Counter({OVERLONG: dropped} if dropped else {})
        if dropped:
            log.info("dropped %d prompts longer than %s tokens (thesis §5.4)", dropped, self.max_prompt_tokens)
        if not self.records:
            raise DataError(f"no prompt left from {len(self.sources)} source(s) after dropping {dropped} over "
                            f"data.max_prompt_tokens={self.max_prompt_tokens}")
        if self.ptx_cfg:
            self.ptx_examples = self._ptx_examples(template)

    def _ptx_examples(self, template) -> list[dict]:
        examples = []
        for index, spec in enumerate(self.ptx_cfg.sources):
            for record in load_source(spec, kind="conversation", seed=self.seed, key=f"data.ptx.sources.{index}"):
                encoded = tokenize_conversation(self.tokenizer, record["messages"], template, self.ptx_cfg.max_length)
                if any(label != IGNORE_INDEX for label in encoded["labels"]):
                    examples.append(encoded)
        return examples

    def train_dataloader(self) -> PromptLoader:
        return PromptLoader(self.records, self.batch_size, self.shuffle, self.seed)

    def ptx_stream(self) -> PTXStream | None:
        if self.ptx_cfg is None:
            return None
        return PTXStream(self.ptx_examples, self.ptx_cfg.batch_size or self.batch_size, self.tokenizer.pad_token_id,
                         self.seed)
