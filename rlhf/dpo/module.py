"""DPOModule: direct alignment from preference pairs (docs/algorithms.md §3) as a Lightning stage.

One policy forward per batch gives the summed log-probs of every chosen and rejected response
(rlhf.dpo.logprobs; with shared-prefix packing each prompt is computed once for its pair). The
reference log-probs come from where `reference` and the adapter say (docs/algorithms.md §3.1):
  LoRA                the policy with its adapter disabled: π_ref is the base, no second copy;
  full fine-tuning    a frozen deep copy of the starting weights;
  reference=cached    one pass over the train and validation data before training, stored per
                      response id (the collator's sequence_uid), so no reference is held while training;
  simpo, orpo         none: the losses are reference-free (docs/algorithms.md §3.6-3.7).
The loss is one of rlhf.dpo.losses, picked by the `dpo_loss` config group.
"""

from __future__ import annotations

import copy
import dataclasses

import lightning as L
import torch
from lightning.pytorch.utilities import move_data_to_device
from torchmetrics import MeanMetric

from rlhf.core.config import AdapterConfig, ModelConfig
from rlhf.core.errors import ConfigError
from rlhf.core.export import export_hf
from rlhf.core.lora import apply_lora, is_lora
from rlhf.core.models import load_backbone, load_backbone_tokenizer
from rlhf.core.optim import build_optimizer, build_scheduler
from rlhf.core.schema import as_config, to_dict
from rlhf.core.sharding import shard_model
from rlhf.data.preference_datamodule import PreferenceCollator
from rlhf.dpo.config import REFERENCE_FREE, DPOModuleConfig, SigmoidLossConfig
from rlhf.dpo.logprobs import response_logprobs
from rlhf.dpo.losses import kto_kl_estimate, preference_loss

KEY = "stage.module"
CACHE_KEY = "dpo_reference_logps"
STAT_NAMES = {"chosen_rewards": "rewards/chosen", "rejected_rewards": "rewards/rejected",
              "margins": "rewards/margins", "accuracy": "rewards/accuracy",
              "chosen_logps": "logps/chosen", "rejected_logps": "logps/rejected", "kl": "kl/reference_point"}


def mismatched_batch(batch: dict, examples: torch.Tensor, pad_token_id: int) -> dict:
    """KTO's mismatched pairs (Ethayarajh et al. 2024 §4): example k's prompt with the response of
    example k + 1 (cyclically), padded; responses cut to the batch's longest sequence. With a single
    pair, "mismatched" is the prompt's own other response."""
    parts = batch["sequence_parts"]
    order = examples.tolist()
    width = max(len(p) + len(r) for p, r in parts)
    groups = []
    for k, n in enumerate(order):
        prompt = parts[n][0]
        response = parts[order[(k + 1) % len(order)]][1]
        seq = prompt + response[:max(1, width - len(prompt))]
        groups.append({"input_ids": [seq], "prompt_lengths": [len(prompt)], "pairs": [], "margins": [],
                       "uids": [k]})
    return PreferenceCollator(pad_token_id)(groups)


class DPOModule(L.LightningModule):
    def __init__(self, model, peft=None, optim=None, **settings):
        """`model` and `peft` are their config groups; `optim`, `loss`, `reference` and the other
        settings are DPOModuleConfig fields (None = its default). Sections may be dataclasses or mappings."""
        super().__init__()
        given = {"optim": optim, **settings}
        self.cfg = cfg = as_config(DPOModuleConfig, {k: v for k, v in given.items() if v is not None}, KEY)
        self.model_spec = as_config(ModelConfig, model, f"{KEY}.model")
        self.peft_cfg = as_config(AdapterConfig, peft, f"{KEY}.peft") if peft else None
        self.optim_cfg = cfg.optim
        self.loss_cfg = cfg.loss or SigmoidLossConfig()
        self.kind = self.loss_cfg.name
        self.loss_params = {k: v for k, v in dataclasses.asdict(self.loss_cfg).items() if k != "name"}
        self.uses_reference = self.kind not in REFERENCE_FREE
        if self.kind == "kto" and cfg.reference == "cached":
            raise ConfigError(f"{KEY}.reference", "kto's reference point needs reference log-probs of mismatched "
                                                  "pairs that change with every batch, so they cannot be cached; "
                                                  "use stage.module.reference=model")
        self.save_hyperparameters({"model": to_dict(self.model_spec),
                                   "peft": to_dict(self.peft_cfg) if self.peft_cfg else None,
                                   "optim": to_dict(cfg.optim), "loss": to_dict(self.loss_cfg),
                                   "reference": cfg.reference, "template": cfg.template,
                                   "max_length": cfg.max_length, "min_prompt_tokens": cfg.min_prompt_tokens,
                                   "gradient_checkpointing": cfg.gradient_checkpointing})
        self.tokenizer = load_backbone_tokenizer(self.model_spec)
        self.model = None
        self.reference_model = None
        self.reference_cache: torch.Tensor | None = None
        self.train_loss = MeanMetric()
        self.skipped_pairs = 0.0

    # ---------------------------------------------------------------- models

    def configure_model(self) -> None:
        """Built here, not in __init__, so FSDP2 can shard policy and reference before the optimizer sees them."""
        if self.model is not None:
            return
        base = load_backbone(self.model_spec, self.tokenizer)
        # from_pretrained returns eval mode; training would otherwise run with LoRA dropout off.
        base.train()
        lora = bool(self.peft_cfg and self.peft_cfg.enabled)
        if self.uses_reference and self.cfg.reference == "model" and not lora:
            self.reference_model = copy.deepcopy(base).requires_grad_(False).eval()
        if self.cfg.gradient_checkpointing:
            base.gradient_checkpointing_enable()
            base.config.use_cache = False
        self.model = apply_lora(base, self.peft_cfg)
        if self.device_mesh is not None:
            shard_model(self.model, self.device_mesh, self.model_spec.fsdp_param_dtype)
            if self.reference_model is not None:
                shard_model(self.reference_model, self.device_mesh, self.model_spec.fsdp_param_dtype)

    @torch.no_grad()
    def reference_forward(self, batch: dict) -> torch.Tensor:
        """log π_ref of every sequence of `batch`: the frozen copy, else the adapter-disabled policy,
        else (full fine-tuning, caching before the first step) the policy itself in eval mode."""
        if self.reference_model is not None:
            return response_logprobs(self.reference_model, batch)[0]
        if is_lora(self.model):
            with self.model.disable_adapter():
                return response_logprobs(self.model, batch)[0]
        was_training = self.model.training
        self.model.eval()
        try:
            return response_logprobs(self.model, batch)[0]
        finally:
            self.model.train(was_training)

    def reference_logprobs(self, batch: dict) -> torch.Tensor:
        if self.reference_cache is None:
            return self.reference_forward(batch)
        cached = self.reference_cache.to(self.device)[batch["sequence_uid"]]
        if bool(torch.isnan(cached).any()):
            raise RuntimeError("a response of this batch has no cached reference log-prob: the data changed "
                               "after the caching pass (stage.module.reference=cached)")
        return cached

    @torch.no_grad()
    def cache_reference(self, datamodule) -> torch.Tensor:
        """log π_ref of every train and validation response, indexed by sequence_uid."""
        groups = list(datamodule.train_set) + list(datamodule.val_set or [])
        cache = torch.full((datamodule.num_sequences,), float("nan"))
        collate, size = datamodule.collator(), datamodule.eval_batch_size
        for start in range(0, len(groups), size):
            batch = move_data_to_device(collate(groups[start:start + size]), self.device)
            cache[batch["sequence_uid"].cpu()] = self.reference_forward(batch).cpu()
        return cache

    def on_fit_start(self):
        datamodule = self.trainer.datamodule
        # the data module logs each reason when it skips; the total is also a metric of the run
        self.skipped_pairs = float(sum(getattr(datamodule, "skipped", {}).values()))
        if self.uses_reference and self.cfg.reference == "cached" and self.reference_cache is None:
            if not hasattr(datamodule, "num_sequences"):
                raise ConfigError(f"{KEY}.reference", "reference=cached reads the whole train set once before "
                                                      "training, so it needs a PreferenceDataModule passed to fit")
            self.reference_cache = self.cache_reference(datamodule)

    def on_save_checkpoint(self, checkpoint):
        """The cache goes with the weights: after a resume the policy is no longer π_ref."""
        if self.reference_cache is not None:
            checkpoint[CACHE_KEY] = self.reference_cache.cpu()

    def on_load_checkpoint(self, checkpoint):
        if CACHE_KEY in checkpoint:
            self.reference_cache = checkpoint[CACHE_KEY]

    # ---------------------------------------------------------------- loss

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """(loss, stats) of one batch of pairs: the configured loss on summed log-probs, plus
        logps/*, and kl/reference = mean log π − log π_ref over the batch's responses (an estimate
        of KL(π‖π_ref) on the data's responses, not on samples of π)."""
        sums, lengths = response_logprobs(self.model, batch)
        chosen, rejected = batch["pair_index"][:, 0], batch["pair_index"][:, 1]
        ref = self.reference_logprobs(batch) if self.uses_reference else None
        if self.kind == "kto":
            examples = torch.cat([chosen, rejected])
            desirable = torch.cat([torch.ones_like(chosen, dtype=torch.bool), torch.zeros_like(rejected, dtype=torch.bool)])
            loss, stats = preference_loss("kto", sums[examples], ref[examples], desirable,
                                          self.kto_reference_point(batch, examples), **self.loss_params)
        elif self.kind in REFERENCE_FREE:
            loss, stats = preference_loss(self.kind, sums[chosen], sums[rejected], lengths[chosen], lengths[rejected],
                                          **self.loss_params)
        else:
            extra = {"chosen_lengths": lengths[chosen], "rejected_lengths": lengths[rejected]} if self.kind == "ipo" else {}
            loss, stats = preference_loss(self.kind, sums[chosen], sums[rejected], ref[chosen], ref[rejected],
                                          **self.loss_params, **extra)
        with torch.no_grad():
            stats.update(chosen_logps=sums[chosen].mean(), rejected_logps=sums[rejected].mean())
            if ref is not None:
                used = torch.cat([chosen, rejected])
                stats["kl/reference"] = (sums[used] - ref[used]).mean()
        return loss, stats

    @torch.no_grad()
    def kto_reference_point(self, batch: dict, examples: torch.Tensor) -> torch.Tensor:
        """z of KTO from the batch's mismatched pairs (rlhf.dpo.losses.kto_kl_estimate)."""
        mismatched = move_data_to_device(mismatched_batch(batch, examples, self.tokenizer.pad_token_id), self.device)
        return kto_kl_estimate(response_logprobs(self.model, mismatched)[0], self.reference_forward(mismatched))

    def _log_stats(self, split: str, loss: torch.Tensor, stats: dict, n_pairs: int, on_step: bool) -> None:
        self.log(f"{split}/loss", loss.detach(), prog_bar=True, batch_size=n_pairs, on_step=on_step, on_epoch=not on_step)
        for name, value in stats.items():
            self.log(f"{split}/{STAT_NAMES.get(name, name)}", value, batch_size=n_pairs, on_step=on_step,
                     on_epoch=not on_step)

    def training_step(self, batch, batch_idx):
        loss, stats = self.compute_loss(batch)
        n_pairs = batch["pair_index"].size(0)
        self.train_loss.update(loss.detach(), weight=n_pairs)
        self._log_stats("train", loss, stats, n_pairs, on_step=True)
        return loss

    def on_train_epoch_end(self):
        if self.train_loss.update_count:
            self.log("train/epoch_loss", self.train_loss.compute())
        self.log("data/skipped_pairs", self.skipped_pairs)
        self.train_loss.reset()

    def validation_step(self, batch, batch_idx):
        loss, stats = self.compute_loss(batch)
        self._log_stats("val", loss, stats, batch["pair_index"].size(0), on_step=False)

    def configure_optimizers(self):
        optimizer = build_optimizer(self.model.parameters(), self.optim_cfg, f"{KEY}.optim")
        total = int(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": build_scheduler(optimizer, self.optim_cfg, total, f"{KEY}.optim")}

    # ---------------------------------------------------------------- export

    def export_metadata(self) -> dict:
        """What rlhf.dpo.implicit_reward needs to score with this policy: its base (π_ref) and β."""
        return {"stage": "dpo", "base": str(self.model_spec.source), "base_model": to_dict(self.model_spec),
                "loss": to_dict(self.loss_cfg), "template": self.cfg.template, "max_length": self.cfg.max_length,
                "min_prompt_tokens": self.cfg.min_prompt_tokens}

    def export(self, out_dir) -> str:
        """HF folders (merged + adapter) recording the base model; collective under FSDP2."""
        return str(export_hf(self.model, self.tokenizer, out_dir, self.export_metadata(),
                             self.trainer.is_global_zero if self._trainer else True))
