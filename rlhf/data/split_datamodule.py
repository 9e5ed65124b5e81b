"""What the SFT, preference and absolute data modules share: typed settings, the stage's tokenizer,
the train/validation split, batch sizes and the two loaders (resumable shuffled training batches,
plain validation batches); each module supplies its records, encoding and `collator()`."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from rlhf.core.errors import ConfigError
from rlhf.core.schema import as_config
from rlhf.data.config import SplitDataConfig
from rlhf.data.resumable_loader import ResumableLoader

KEY = "data"


class SplitDataModule(L.LightningDataModule):
    """`tokenizer` is the stage module's own, so data and model never tokenize apart; the settings
    are the fields of CONFIG (Hydra passes them as keywords), their defaults live there."""

    CONFIG = SplitDataConfig

    def __init__(self, tokenizer, **settings):
        super().__init__()
        self.cfg = cfg = as_config(self.CONFIG, settings, KEY)
        self.tokenizer = tokenizer
        self.sources = list(cfg.sources)
        self.template_name = cfg.template
        self.max_length = cfg.max_length
        self.val_fraction = cfg.val_fraction
        self.batch_size = cfg.batch_size
        self.eval_batch_size = cfg.eval_batch_size or cfg.batch_size
        self.num_workers = cfg.num_workers
        self.seed = cfg.seed
        self.train_set = self.val_set = None

    def require_tokenizer(self):
        if self.tokenizer is None:
            raise ConfigError(KEY, f"{type(self).__name__} was built without a tokenizer: pass the stage module's "
                                   "(rlhf.train.fit does: instantiate(cfg.data, tokenizer=module.tokenizer))")
        return self.tokenizer

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
