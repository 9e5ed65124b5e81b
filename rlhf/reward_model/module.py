"""RewardModule: a scalar-head RM trained on preferences (pairs / K-way rankings) or absolute labels.

docs/methods.md §3: the backbone (an SFT folder, the embedded SmolLM2 or the tiny test model) gets a
linear head with one output (thesis §5.3); the score is read at the last real
token (rlhf.reward_model.scoring.sequence_scores). A K-way ranking costs one forward per response and is
expanded to its pairs inside the loss (docs/methods.md §3.3-3.4).
"""

from __future__ import annotations

import json

import lightning as L
import torch
from lightning.pytorch.utilities import move_data_to_device
from torchmetrics import MeanMetric

from rlhf.core.config import AdapterConfig, ModelConfig
from rlhf.core.errors import ConfigError
from rlhf.core.export import export_hf
from rlhf.core.lora import apply_lora
from rlhf.reward_model.losses import gather_pairs, logistic_soft_bce_loss, margin_ranking_loss, mse_range_penalty_loss, pairwise_logistic_loss, sigmoid_mse_loss
from rlhf.core.models import load_backbone_tokenizer, load_sequence_classifier
from rlhf.core.optim import build_optimizer, build_scheduler
from rlhf.reward_model.metrics import BucketedRegressionError, PairwiseAccuracy, RewardMoments
from rlhf.reward_model.scoring import STATS_FILE, batch_scores, sequence_scores
from rlhf.core.schema import as_config, to_dict
from rlhf.core.sharding import shard_model
from rlhf.reward_model.config import (ABSOLUTE_LOSSES, DEFAULT_LOSS, LOSSES, PREFERENCE_LOSSES, MarginRankingLossConfig,
                                      MSELossConfig, RewardModuleConfig, SigmoidMSELossConfig)

KEY = "stage.module"


def load_reward_backbone(spec: ModelConfig | dict, tokenizer):
    """The RM named by a `model` config group: rlhf.core.models.load_sequence_classifier with one
    output, so the tiny RM and the tiny SFT model of the same seed share their transformer weights."""
    spec = as_config(ModelConfig, spec, "model")
    return load_sequence_classifier(spec.source, spec.dtype, tokenizer=tokenizer, cache_dir=spec.cache_dir,
                                    trust_remote_code=spec.trust_remote_code,
                                    tiny=to_dict(spec.tiny) if spec.tiny is not None else None)


def loss_for_kind(kind: str, loss):
    """The loss section of a `kind` of RM: the kind's default when unset, else it must be one of its losses."""
    if loss is None:
        return LOSSES[DEFAULT_LOSS[kind]]()
    table = PREFERENCE_LOSSES if kind == "preference" else ABSOLUTE_LOSSES
    if loss.name not in table:
        raise ConfigError(f"{KEY}.loss.name", f"{loss.name!r} is not a {kind} loss; allowed: {', '.join(table)} "
                                              f"(pick one with reward_loss@{KEY}.loss=...)")
    return loss


def preference_loss(loss, chosen: torch.Tensor, rejected: torch.Tensor, group_ids: torch.Tensor | None,
                    pair_margin: torch.Tensor | None) -> torch.Tensor:
    """The configured pairwise loss; a per-pair margin from the batch replaces the fixed one."""
    groups = group_ids if loss.group_mean else None
    margin = pair_margin if pair_margin is not None else float(loss.margin)
    if isinstance(loss, MarginRankingLossConfig):
        return margin_ranking_loss(chosen, rejected, margin, groups)
    return pairwise_logistic_loss(chosen, rejected, margin, float(loss.center_coef), groups)


def absolute_loss(loss, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if isinstance(loss, MSELossConfig):
        return mse_range_penalty_loss(logits, target, weight, float(loss.penalty_coef))
    if isinstance(loss, SigmoidMSELossConfig):
        return sigmoid_mse_loss(logits, target, weight)
    return logistic_soft_bce_loss(logits, target, weight)


class RewardModule(L.LightningModule):
    def __init__(self, model, peft=None, optim=None, **settings):
        """`model` and `peft` are their config groups; `optim`, `kind`, `loss` and the other settings
        are RewardModuleConfig fields (None = its default). Sections may be dataclasses or mappings."""
        super().__init__()
        given = {"optim": optim, **settings}
        self.cfg = cfg = as_config(RewardModuleConfig, {k: v for k, v in given.items() if v is not None}, KEY)
        self.model_spec = as_config(ModelConfig, model, f"{KEY}.model")
        self.peft_cfg = as_config(AdapterConfig, peft, f"{KEY}.peft") if peft else None
        self.optim_cfg = cfg.optim
        self.kind = cfg.kind
        self.loss_cfg = loss_for_kind(cfg.kind, cfg.loss)
        self.template = cfg.template
        self.max_length = cfg.max_length
        self.min_prompt_tokens = cfg.min_prompt_tokens
        self.gradient_checkpointing = cfg.gradient_checkpointing
        self.save_hyperparameters({"model": to_dict(self.model_spec),
                                   "peft": to_dict(self.peft_cfg) if self.peft_cfg else None,
                                   "optim": to_dict(cfg.optim), "kind": cfg.kind, "loss": to_dict(self.loss_cfg),
                                   "template": cfg.template, "max_length": cfg.max_length,
                                   "min_prompt_tokens": cfg.min_prompt_tokens,
                                   "gradient_checkpointing": cfg.gradient_checkpointing})
        self.tokenizer = load_backbone_tokenizer(self.model_spec)
        self.model = None
        self.reward_stats: dict | None = None
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.val_moments = RewardMoments()
        if self.kind == "preference":
            self.train_acc, self.val_acc = PairwiseAccuracy(), PairwiseAccuracy()
            self.val_margin = MeanMetric()
        else:
            self.val_error = BucketedRegressionError()

    def configure_model(self) -> None:
        """Built here, not in __init__, so FSDP2 can shard it before the optimizer sees it."""
        if self.model is not None:
            return
        model = load_reward_backbone(self.model_spec, self.tokenizer)
        if self.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        self.model = apply_lora(model, self.peft_cfg, task_type="SEQ_CLS", modules_to_save=["score"])
        if self.device_mesh is not None:
            shard_model(self.model, self.device_mesh, self.model_spec.fsdp_param_dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return sequence_scores(self.model, input_ids, attention_mask)

    def prediction(self, scores: torch.Tensor) -> torch.Tensor:
        """ŷ the absolute metrics compare with y: σ(z) for sigmoid-trained heads, z for `mse`."""
        return scores if isinstance(self.loss_cfg, MSELossConfig) else torch.sigmoid(scores)

    def _step(self, batch) -> tuple[torch.Tensor, torch.Tensor, dict]:
        scores = batch_scores(self.model, batch)
        if self.kind == "preference":
            chosen, rejected = gather_pairs(scores, batch["pair_index"])
            loss = preference_loss(self.loss_cfg, chosen, rejected, batch.get("pair_group"), batch.get("pair_margin"))
            return loss, scores, {"chosen": chosen.detach(), "rejected": rejected.detach()}
        loss = absolute_loss(self.loss_cfg, scores, batch["target"], batch.get("weight"))
        return loss, scores, {"target": batch["target"]}

    def training_step(self, batch, batch_idx):
        loss, scores, extra = self._step(batch)
        n = scores.numel()
        self.train_loss.update(loss.detach(), weight=n)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=n)
        if self.kind == "preference":
            self.train_acc.update(extra["chosen"], extra["rejected"])
            self.log("train/pairwise_accuracy", self.train_acc, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def on_train_epoch_end(self):
        if self.train_loss.update_count:
            self.log("train/epoch_loss", self.train_loss.compute())
        self.train_loss.reset()

    def validation_step(self, batch, batch_idx):
        loss, scores, extra = self._step(batch)
        self.val_loss.update(loss, weight=scores.numel())
        self.val_moments.update(scores)
        if self.kind == "preference":
            self.val_acc.update(extra["chosen"], extra["rejected"])
            if extra["chosen"].numel():
                self.val_margin.update(extra["chosen"] - extra["rejected"])
        else:
            self.val_error.update(self.prediction(scores), extra["target"])

    def on_validation_epoch_end(self):
        if self.val_loss.update_count == 0:
            return
        self.log("val/loss", self.val_loss.compute(), prog_bar=True)
        moments = self.val_moments.compute()
        self.log("val/reward_mean", moments["mean"])
        self.log("val/reward_std", moments["std"])
        if self.kind == "preference":
            self.log("val/pairwise_accuracy", self.val_acc.compute(), prog_bar=True)
            if self.val_margin.update_count:
                self.log("val/mean_margin", self.val_margin.compute())
            self.val_acc.reset()
            self.val_margin.reset()
        else:
            for name, value in self.val_error.compute().items():
                if torch.isfinite(value):
                    self.log(f"val/{name}", value)
            self.val_error.reset()
        self.val_loss.reset()
        self.val_moments.reset()

    @torch.no_grad()
    def reference_stats(self, loader) -> dict:
        """Mean and std of the raw head output z over a reference set (docs/methods.md §3.9, §4.3)."""
        moments = RewardMoments().to(self.device)
        was_training = self.model.training
        self.model.eval()
        for batch in loader:
            moments.update(batch_scores(self.model, move_data_to_device(batch, self.device)))
        self.model.train(was_training)
        values = moments.compute()
        return {"mean": float(values["mean"]), "std": float(values["std"]), "n": int(values["count"])}

    def on_fit_end(self):
        """The validation set is the reference set PPO normalises with; the training set if there is none."""
        datamodule = self.trainer.datamodule
        if datamodule is None:
            return
        loader = datamodule.val_dataloader() or datamodule.train_dataloader()
        self.reward_stats = self.reference_stats(loader)

    def configure_optimizers(self):
        optimizer = build_optimizer(self.parameters(), self.optim_cfg, f"{KEY}.optim")
        total = int(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": build_scheduler(optimizer, self.optim_cfg, total, f"{KEY}.optim")}

    def stats_record(self) -> dict:
        """The reward_stats.json that scoring.py reads; mean 0 / std 1 (identity) when never measured."""
        stats = self.reward_stats or {"mean": 0.0, "std": 1.0, "n": 0}
        return {**stats, "kind": self.kind, "template": self.template, "max_length": self.max_length,
                "min_prompt_tokens": self.min_prompt_tokens, "loss": self.loss_cfg.name}

    def export(self, out_dir) -> str:
        """`out_dir/merged` (LoRA merged) and `out_dir/adapter`, each with reward_stats.json.

        Each folder is published with its stats inside (rlhf.core.atomic), so a reader never sees
        a model folder without its stats. Collective under FSDP2; rank zero writes.
        """
        is_zero = self.trainer.is_global_zero if self._trainer else True
        metadata = {"stage": "reward", "kind": self.kind, "base": str(self.model_spec.source)}
        stats = json.dumps(self.stats_record(), indent=2, sort_keys=True)
        return str(export_hf(self.model, self.tokenizer, out_dir, metadata, is_zero, extra_files={STATS_FILE: stats}))
