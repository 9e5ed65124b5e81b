"""What the preference and absolute reward data modules add to the shared split data module: the
thesis truncation setting (prompt tokens kept) and the padding side; they differ in how records
become examples and batches."""

from __future__ import annotations

from rlhf.data.config import RewardDataConfig
from rlhf.data.split_datamodule import SplitDataModule


class RewardDataModule(SplitDataModule):
    CONFIG = RewardDataConfig

    def __init__(self, tokenizer, **settings):
        super().__init__(tokenizer, **settings)
        self.min_prompt_tokens = self.cfg.min_prompt_tokens
        self.padding_side = self.cfg.padding_side
