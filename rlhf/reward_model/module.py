"""RewardModule: a scalar-head RM trained on preferences (pairs / K-way rankings) or absolute labels.

METHODS §3: the backbone (an SFT folder, the embedded SmolLM2 or the tiny test model) gets a
linear head with one output (002_e26accabd985358d.txt §5.3); the score is read at the last real
token (rlhf.reward_model.scoring.sequence_scores). A K-way ranking costs one forward per response and is
expanded to its pairs inside the loss (METHODS §3.3-3.4).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import move_data_to_device
from torchmetrics import MeanMetric

from rlhf.core.errors import ConfigError
from rlhf.core.export import export_hf
from rlhf.core.lora import apply_lora
from rlhf.reward_model.losses import gather_pairs, logistic_soft_bce_loss, margin_ranking_loss, mse_range_penalty_loss, pairwise_logistic_loss, sigmoid_mse_loss
from rlhf.core.models import build_tiny_llama, load_backbone_tokenizer, resolve_source, torch_dtype
from rlhf.core.optim import build_optimizer, build_scheduler
from rlhf.reward_model.metrics import BucketedRegressionError, PairwiseAccuracy, RewardMoments
from rlhf.reward_model.scoring import STATS_FILE, batch_scores, sequence_scores
from rlhf.core.sharding import shard_model

KINDS = ("preference", "absolute")
# loss name -> the keys it accepts besides `name` (mirrors rlhf.rl.losses)
PREFERENCE_LOSSES = {"pairwise_logistic": {"margin", "center_coef", "group_mean"},
                     "margin_ranking": {"margin", "group_mean"}}
ABSOLUTE_LOSSES = {"logistic": set(), "sig+mse": set(), "mse": {"penalty_coef"}}


def load_reward_backbone(spec: dict, tokenizer):
    """AutoModelForSequenceClassification(num_labels=1) named by a `model` config group.

    `tiny` builds the test Llama and copies its body, so the tiny RM and the tiny SFT model of the
    same seed share their transformer weights. Only safetensors are read.
    """
    from transformers import AutoModelForSequenceClassification, LlamaForSequenceClassification

    dtype = torch_dtype(spec.get("dtype", "float32"))
    if str(spec["source"]) == "tiny":
        lm = build_tiny_llama(tokenizer, **(spec.get("tiny") or {}))
        config = lm.config
        config.num_labels = 1
        with torch.random.fork_rng():
            torch.manual_seed(int((spec.get("tiny") or {}).get("seed", 0)))
            model = LlamaForSequenceClassification(config)
        model.model.load_state_dict(lm.model.state_dict())
        return model.to(dtype)
    path = resolve_source(spec["source"], spec.get("cache_dir"))
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, dtype=dtype, use_safetensors=True,
        trust_remote_code=spec.get("trust_remote_code", False),
    )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def check_loss_config(kind: str, loss: dict) -> dict:
    if kind not in KINDS:
        raise ConfigError("stage.module.kind", f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")
    table = PREFERENCE_LOSSES if kind == "preference" else ABSOLUTE_LOSSES
    name = loss.get("name")
    if name not in table:
        raise ConfigError("stage.module.loss.name", f"{name!r} is not a {kind} loss; allowed: {', '.join(table)}")
    unknown = set(loss) - table[name] - {"name"}
    if unknown:
        raise ConfigError("stage.module.loss", f"{name} takes {sorted(table[name])}, not {sorted(unknown)}")
    return loss


def preference_loss(loss: dict, chosen: torch.Tensor, rejected: torch.Tensor, group_ids: torch.Tensor | None,
                    pair_margin: torch.Tensor | None) -> torch.Tensor:
    """The configured pairwise loss; a per-pair margin from the batch replaces the fixed one."""
    groups = group_ids if loss.get("group_mean", True) else None
    if loss["name"] == "margin_ranking":
        margin = pair_margin if pair_margin is not None else float(loss.get("margin", 1.0))
        return margin_ranking_loss(chosen, rejected, margin, groups)
    margin = pair_margin if pair_margin is not None else float(loss.get("margin", 0.0))
    return pairwise_logistic_loss(chosen, rejected, margin, float(loss.get("center_coef", 0.0)), groups)


def absolute_loss(loss: dict, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if loss["name"] == "mse":
        return mse_range_penalty_loss(logits, target, weight, float(loss.get("penalty_coef", 0.02)))
    if loss["name"] == "sig+mse":
        return sigmoid_mse_loss(logits, target, weight)
    return logistic_soft_bce_loss(logits, target, weight)


class RewardModule(L.LightningModule):
    def __init__(self, model: dict, peft: dict | None = None, optim: dict | None = None, kind: str = "preference",
                 loss: dict | None = None, template: str = "chatml", max_length: int = 2048,
                 min_prompt_tokens: int = 256, gradient_checkpointing: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.model_spec = dict(model)
        self.peft_cfg = dict(peft) if peft else None
        self.optim_cfg = dict(optim or {})
        self.kind = kind
        default = {"name": "pairwise_logistic"} if kind == "preference" else {"name": "logistic"}
        self.loss_cfg = check_loss_config(kind, dict(loss or default))
        self.template = template
        self.max_length = max_length
        self.min_prompt_tokens = min_prompt_tokens
        self.gradient_checkpointing = gradient_checkpointing
        self.tokenizer = load_backbone_tokenizer(self.model_spec)
        self.model = None
        self.reward_stats: dict | None = None
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.val_moments = RewardMoments()
        if kind == "preference":
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
            shard_model(self.model, self.device_mesh, self.model_spec.get("fsdp_param_dtype"))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return sequence_scores(self.model, input_ids, attention_mask)

    def prediction(self, scores: torch.Tensor) -> torch.Tensor:
        """ŷ the absolute metrics compare with y: σ(z) for sigmoid-trained heads, z for `mse`."""
        return scores if self.loss_cfg["name"] == "mse" else torch.sigmoid(scores)

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
        """Mean and std of the raw head output z over a reference set (METHODS §3.9, §4.3)."""
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
        optimizer = build_optimizer(self.parameters(), self.optim_cfg)
        total = int(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": build_scheduler(optimizer, self.optim_cfg, total)}

    def stats_record(self) -> dict:
        """The reward_stats.json of CONTRACTS.md; mean 0 / std 1 (identity) when never measured."""
        stats = self.reward_stats or {"mean": 0.0, "std": 1.0, "n": 0}
        return {**stats, "kind": self.kind, "template": self.template, "max_length": self.max_length,
                "min_prompt_tokens": self.min_prompt_tokens, "loss": self.loss_cfg["name"]}

    def export(self, out_dir) -> str:
        """`out_dir/merged` (LoRA merged) and `out_dir/adapter`, each with reward_stats.json.

        Both are staged in a hidden sibling folder and renamed into place, so a reader never sees
        a model folder without its stats. Collective under FSDP2; rank zero writes.
        """
        out_dir = Path(out_dir)
        is_zero = self.trainer.is_global_zero if self._trainer else True
        metadata = {"stage": "reward", "kind": self.kind, "base": str(self.model_spec["source"])}
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent)) if is_zero else out_dir
        try:
            export_hf(self.model, self.tokenizer, staging, metadata, is_zero)
            if not is_zero:
                return str(out_dir / "merged")
            stats = json.dumps(self.stats_record(), indent=2, sort_keys=True)
            out_dir.mkdir(parents=True, exist_ok=True)
            for folder in sorted(p for p in staging.iterdir() if p.is_dir()):
                (folder / STATS_FILE).write_text(stats)
                target = out_dir / folder.name
                if target.exists():
                    shutil.rmtree(target)
                os.replace(folder, target)
        finally:
            if is_zero and staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return str(out_dir / "merged")
