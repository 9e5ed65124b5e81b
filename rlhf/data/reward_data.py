"""What the preference and absolute reward data modules share: the same truncation settings,
split, padding side and loaders; they differ in how records become examples and batches."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from rlhf.data.resumable_loader import ResumableLoader
from rlhf.errors import ConfigError


class RewardDataModule(L.LightningDataModule):
    def __init__(self, model: dict, sources: list[dict], template: str, max_length: int, min_prompt_tokens: int,
                 val_fraction: float, batch_size: int, eval_batch_size: int | None, padding_side: str,
                 num_workers: int, seed: int):
        super().__init__()
        if padding_side not in ("left", "right"):
            raise ConfigError("data.padding_side", f"{padding_side!r}; allowed: left, right")
        self.model_spec = dict(model)
        self.sources = [dict(s) for s in sources]
        self.template_name = template
        self.max_length = max_length
        self.min_prompt_tokens = min_prompt_tokens
        self.val_fraction = val_fraction
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.padding_side = padding_side
        self.num_workers = num_workers
        self.seed = seed
        self.tokenizer = None
        self.train_set = self.val_set = None

    def collator(self):
        raise NotImplementedError

    def train_dataloader(self):
        return ResumableLoader(self.train_set, self.batch_size, self.collator(), seed=self.seed,
                               num_workers=self.num_workers)

    def val_dataloader(self):
        if not self.val_set:
            return []
        return DataLoader(self.val_set, batch_size=self.eval_batch_size, shuffle=False,
                          num_workers=self.num_workers, collate_fn=self.collator())
