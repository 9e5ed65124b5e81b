"""SFTModule: overfitting 8 examples, optimizer/schedule from config, metrics,
LoRA export -> reload (merged and adapter) with identical logits, full fine-tuning by config.

Two short fits (tiny model, whole dataset in one batch) are shared by the tests of this file.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhf.core.models import load_backbone_tokenizer
from rlhf.data.sft_datamodule import SFTDataModule
from rlhf.core.models import build_tiny_llama
from rlhf.sft.module import SFTModule

TINY = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128, "seed": 0}
TINY_SPEC = {"source": "tiny", "tokenizer": "embedded:smollm2-135m", "dtype": "float32", "tiny": TINY}
LORA = {"enabled": True, "r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"}
PROBE = torch.tensor([[1, 4093, 198, 26843, 2, 198, 1, 520, 9531, 198, 19556, 665, 2]])  # a ChatML exchange


class StepRecorder(L.Callback):
    def __init__(self):
        self.losses, self.lrs = [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def _fit(tmp_path, peft, optim, steps):
    """9 records, val_fraction 0.1 -> 1 validation + 8 training examples, batch 8: one step per epoch."""
    data = tmp_path / "nine.jsonl"
    data.write_text("".join(json.dumps({"q": f"What is {i} plus {i}?", "a": f"{i} plus {i} is {2 * i}."}) + "\n"
                            for i in range(9)))
    L.seed_everything(0)
    datamodule = SFTDataModule(load_backbone_tokenizer(TINY_SPEC), sources=[{"path": str(data), "adapter": "generic",
                                            "fields": {"prompt": "q", "response": "a"}}],
                               val_fraction=0.1, batch_size=8, max_length=64)
    module = SFTModule(TINY_SPEC, peft, optim)
    recorder = StepRecorder()
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        gradient_clip_val=0.3, callbacks=[recorder])
    trainer.fit(module, datamodule=datamodule)
    return SimpleNamespace(module=module, trainer=trainer, recorder=recorder, datamodule=datamodule)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    optim = {"lr": 3e-2, "betas": [0.9, 0.999], "eps": 1e-12, "schedule": "cosine", "warmup_ratio": 0.2}
    return _fit(tmp_path_factory.mktemp("full"), {"enabled": False}, optim, steps=6)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    return _fit(tmp_path_factory.mktemp("lora"), LORA, {"lr": 5e-2, "schedule": "constant"}, steps=4)


def test_step_loss_accuracy_and_token_count_by_hand():
    # B=1, T=3, V=2, labels [-100, 1, 0]: position 0 predicts 1, position 1 predicts 0.
    #   logits[0] = [0, ln 3] -> p(1) = 3/4, -ln 0.75 = 0.287682; argmax 1 (right)
    #   logits[1] = [0, 1]    -> p(0) = 1/(1+e) = 0.268941, -ln = 1.313262; argmax 1 (wrong)
    # loss = (0.287682 + 1.313262) / 2 = 0.800472, accuracy 1/2, 2 tokens. Position 2 is never read.
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 1.0], [5.0, -5.0]]])
    module = SFTModule.__new__(SFTModule)
    L.LightningModule.__init__(module)
    module.model = lambda input_ids, attention_mask: SimpleNamespace(logits=logits)
    batch = {"input_ids": torch.zeros(1, 3, dtype=torch.long), "attention_mask": torch.ones(1, 3, dtype=torch.long),
             "labels": torch.tensor([[-100, 1, 0]])}
    loss, accuracy, n_tokens = module._step(batch)
    assert loss.item() == pytest.approx(0.800472, abs=1e-6)
    assert accuracy.item() == 0.5 and n_tokens.item() == 2


def test_full_finetune_overfits_eight_examples(full_run):
    losses = full_run.recorder.losses
    assert len(losses) == 6
    # Random init: loss starts near ln(49152) = 10.80.
    assert losses[0] == pytest.approx(math.log(49152), abs=0.3)
    assert losses[-1] < 0.5 * losses[0]


def test_full_finetune_trains_every_weight_and_exports_merged_only(full_run, tmp_path):
    module = full_run.module
    assert sum(p.numel() for p in module.model.parameters() if p.requires_grad) == 3_227_968  # test_models count
    merged = module.export(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["merged"]
    module.model.eval()
    reloaded = AutoModelForCausalLM.from_pretrained(merged).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(PROBE).logits, module.model(PROBE).logits, atol=1e-5, rtol=0)
    metadata = json.loads((tmp_path / "model" / "merged" / "rlhf_metadata.json").read_text())
    assert metadata == {"stage": "sft", "base": "tiny"}


def test_a_loaded_checkpoint_is_built_in_train_mode(full_run, tmp_path):
    # from_pretrained returns eval mode; SFT must still train with dropout on (LoRA dropout 0.05).
    merged = full_run.module.export(tmp_path / "model")
    module = SFTModule({"source": str(merged), "dtype": "float32"}, LORA, {})
    module.configure_model()
    assert all(m.training for m in module.model.modules())


def test_optimizer_and_cosine_warmup_come_from_config(full_run):
    optimizer = full_run.trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["betas"] == (0.9, 0.999) and optimizer.defaults["eps"] == 1e-12
    # 6 steps, warmup round(0.2 * 6) = 1: lr_0 = 0, then lr_s = 0.03 * 0.5 * (1 + cos(pi * (s - 1) / 5)).
    # s=1: 0.03; s=3: 0.015 * (1 + cos(2pi/5)) = 0.015 * 1.309017 = 0.01963525;
    # s=5: 0.015 * (1 + cos(4pi/5)) = 0.015 * 0.190983 = 0.00286475.
    lrs = full_run.recorder.lrs
    assert lrs[0] == 0.0
    assert [lrs[1], lrs[3], lrs[5]] == pytest.approx([0.03, 0.01963525, 0.00286475], abs=1e-8)
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))


def test_epoch_metrics_are_consistent(full_run):
    metrics = full_run.trainer.callback_metrics
    # One batch per epoch: the epoch loss is the last step's loss; perplexity = exp(loss).
    assert metrics["train/epoch_loss"].item() == pytest.approx(full_run.recorder.losses[-1], rel=1e-5)
    assert metrics["train/epoch_perplexity"].item() == pytest.approx(math.exp(metrics["train/epoch_loss"].item()),
                                                                    rel=1e-5)
    assert metrics["val/perplexity"].item() == pytest.approx(math.exp(metrics["val/loss"].item()), rel=1e-5)
    assert 0.0 <= metrics["val/token_accuracy"].item() <= 1.0
    assert 0.0 < metrics["train/epoch_token_accuracy"].item() <= 1.0  # overfit: some tokens are right


def test_lora_trains_only_the_adapter_and_loss_falls(lora_run):
    model = lora_run.module.model
    assert isinstance(model, PeftModel)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    # r=8 on every linear of 2 layers: q,k,v,o (64->64): 4 * 8 * (64 + 64) = 4,096;
    # gate, up (64->128): 2 * 8 * (64 + 128) = 3,072; down (128->64): 8 * 192 = 1,536 -> 8,704 per layer.
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2 * 8_704
    losses = lora_run.recorder.losses
    assert losses[-1] < losses[0] - 0.1


def test_lora_export_reloads_with_identical_logits(lora_run, tmp_path):
    module = lora_run.module
    module.export(tmp_path / "model")
    module.model.eval()
    with torch.no_grad():
        trained = module.model(PROBE).logits
        # The adapter moved away from the base model, so the comparison below is not vacuous.
        base = build_tiny_llama(module.tokenizer, **TINY).eval()
        assert (trained - base(PROBE).logits).abs().max() > 1e-3
        merged = AutoModelForCausalLM.from_pretrained(tmp_path / "model" / "merged").eval()
        torch.testing.assert_close(merged(PROBE).logits, trained, atol=1e-5, rtol=0)
        adapter = PeftModel.from_pretrained(base, tmp_path / "model" / "adapter").eval()
        torch.testing.assert_close(adapter(PROBE).logits, trained, atol=1e-5, rtol=0)
    assert not any("lora_" in name for name in merged.state_dict())
    config = json.loads((tmp_path / "model" / "adapter" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (8, 16)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model" / "merged")
    assert (tokenizer.pad_token, tokenizer.eos_token) == ("<|endoftext|>", "<|im_end|>")
