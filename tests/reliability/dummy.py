"""A 5-parameter LightningModule whose every number can be checked by hand, for callback tests."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class TinyRegression(L.LightningModule):
    """y = w.x + b with SGD; optional dropout makes the result depend on the RNG stream."""

    def __init__(self, lr: float = 0.1, dropout: float = 0.0, manual: bool = False):
        super().__init__()
        self.lr = lr
        self.layer = torch.nn.Linear(4, 1)
        self.dropout = torch.nn.Dropout(dropout)
        self.automatic_optimization = not manual
        self.losses: list[float] = []

    def loss(self, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(self.dropout(x)).squeeze(-1), y)

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.losses.append(loss.item())
        self.log("train/loss", loss)
        if self.automatic_optimization:
            return loss
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        return None

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def regression_loader(n: int = 16, batch_size: int = 4, seed: int = 0, shuffle: bool = True) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle)


def quiet_trainer(tmp_path, **kwargs) -> L.Trainer:
    options = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(tmp_path))
    options.update(kwargs)
    return L.Trainer(**options)
