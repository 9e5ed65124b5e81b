"""SFTModule: causal-LM fine-tuning with the loss on assistant tokens only (docs/methods.md §2)."""

from __future__ import annotations

import math

import lightning as L
import torch
from torchmetrics import MeanMetric

from rlhf.core.config import AdapterConfig, ModelConfig
from rlhf.core.export import export_hf
from rlhf.core.lora import apply_lora
from rlhf.core.token_losses import masked_lm_loss
from rlhf.core.models import load_backbone, load_backbone_tokenizer
from rlhf.core.optim import build_optimizer, build_scheduler
from rlhf.core.schema import as_config, to_dict
from rlhf.core.sharding import shard_model
from rlhf.sft.config import SFTModuleConfig


KEY = "stage.module"


class SFTModule(L.LightningModule):
    def __init__(self, model, peft=None, optim=None, **settings):
        """`model` and `peft` are their config groups; `optim` and the other settings are
        SFTModuleConfig fields (None = its default). Sections may be dataclasses or mappings."""
        super().__init__()
        given = {"optim": optim, **settings}
        self.cfg = cfg = as_config(SFTModuleConfig, {k: v for k, v in given.items() if v is not None}, KEY)
        self.model_spec = as_config(ModelConfig, model, f"{KEY}.model")
        self.peft_cfg = as_config(AdapterConfig, peft, f"{KEY}.peft") if peft else None
        self.optim_cfg = cfg.optim
        self.gradient_checkpointing = cfg.gradient_checkpointing
        self.save_hyperparameters({"model": to_dict(self.model_spec),
                                   "peft": to_dict(self.peft_cfg) if self.peft_cfg else None,
                                   "optim": to_dict(cfg.optim), "gradient_checkpointing": cfg.gradient_checkpointing})
        self.tokenizer = load_backbone_tokenizer(self.model_spec)
        self.model = None
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.train_acc, self.val_acc = MeanMetric(), MeanMetric()

    def configure_model(self) -> None:
        """Built here, not in __init__, so FSDP2 can shard it before the optimizer sees it."""
        if self.model is not None:
            return
        model = load_backbone(self.model_spec, self.tokenizer)
        # from_pretrained returns eval mode and Lightning keeps module modes as found, so a loaded
        # checkpoint would otherwise train with LoRA dropout silently off.
        model.train()
        if self.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        self.model = apply_lora(model, self.peft_cfg)
        if self.device_mesh is not None:
            shard_model(self.model, self.device_mesh, self.model_spec.fsdp_param_dtype)

    def _step(self, batch):
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"]
        loss = masked_lm_loss(logits, labels)
        with torch.no_grad():
            target = labels[:, 1:]
            valid = target != -100
            correct = (logits[:, :-1].argmax(-1) == target) & valid
            n_tokens = valid.sum()
            accuracy = correct.sum().float() / n_tokens.clamp_min(1)
        return loss, accuracy, n_tokens

    def training_step(self, batch, batch_idx):
        loss, accuracy, n_tokens = self._step(batch)
        self.train_loss.update(loss.detach(), weight=n_tokens)
        self.train_acc.update(accuracy, weight=n_tokens)
        self.log("train/loss", loss.detach(), prog_bar=True)
        self.log("train/token_accuracy", accuracy)
        self.log("train/tokens", n_tokens.float(), reduce_fx="sum")
        return loss

    def on_train_epoch_end(self):
        loss = self.train_loss.compute()
        self.log("train/epoch_loss", loss)
        self.log("train/epoch_perplexity", torch.exp(loss))
        self.log("train/epoch_token_accuracy", self.train_acc.compute())
        self.train_loss.reset()
        self.train_acc.reset()

    def validation_step(self, batch, batch_idx):
        loss, accuracy, n_tokens = self._step(batch)
        self.val_loss.update(loss, weight=n_tokens)
        self.val_acc.update(accuracy, weight=n_tokens)

    def on_validation_epoch_end(self):
        if self.val_loss.update_count == 0:
            return
        loss = self.val_loss.compute()
        self.log("val/loss", loss, prog_bar=True)
        self.log("val/perplexity", torch.exp(loss) if math.isfinite(loss.item()) else loss)
        self.log("val/token_accuracy", self.val_acc.compute())
        self.val_loss.reset()
        self.val_acc.reset()

    def configure_optimizers(self):
        optimizer = build_optimizer(self.parameters(), self.optim_cfg, f"{KEY}.optim")
        total = int(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": build_scheduler(optimizer, self.optim_cfg, total, f"{KEY}.optim")}

    def export(self, out_dir) -> str:
        """HF folders (merged + adapter); collective under FSDP2."""
        return str(export_hf(self.model, self.tokenizer, out_dir, {"stage": "sft", "base": self.model_spec.source},
                             self.trainer.is_global_zero if self._trainer else True))
