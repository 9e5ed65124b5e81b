"""What the preference and absolute reward data modules add to the shared split data module: the
thesis truncation setting (prompt tokens kept) and the padding side; they differ in how records
become examples and batches."""

from __future__ import annotations

from rlhf.data.split_datamodule import SplitDataModule
from rlhf.core.errors import ConfigError


class RewardDataModule(SplitDataModule):
    def __init__(self, model: dict, sources: list[dict], template: str, max_length: int, min_prompt_tokens: int,
                 val_fraction: float, batch_size: int, eval_batch_size: int | None, padding_side: str,
                 num_workers: int, seed: int):
        if padding_side not in ("left", "right"):
            raise ConfigError("data.padding_side", f"{padding_side!r}; allowed: left, right")
        super().__init__(model, sources, template, max_length, val_fraction, batch_size, eval_batch_size,
                         num_workers, seed)
        self.min_prompt_tokens = min_prompt_tokens
        self.padding_side = padding_side
