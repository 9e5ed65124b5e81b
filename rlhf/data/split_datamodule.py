"""What the SFT, preference and absolute data modules share: model spec, sources, template, length,
train/validation split, batch sizes and the two loaders (resumable shuffled training batches, plain
validation batches); each module supplies its records, encoding and `collator()`."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from rlhf.data.resumable_loader import ResumableLoader


class SplitDataModule(L.LightningDataModule):
    def __init__(self, model: dict, sources: list[dict], template: str, max_length: int, val_fraction: float,
                 batch_size: int, eval_batch_size: int | None, num_workers: int, seed: int):
        super().__init__()
        self.model_spec = dict(model)
        self.sources = [dict(s) for s in sources]
        self.template_name = template
        self.max_length = max_length
        self.val_fraction = val_fraction
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
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
