"""LoRA through peft (thesis Tables 3/5/8: r 16, alpha 32, all linear modules)."""

from __future__ import annotations

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from rlhf.core.config import AdapterConfig
from rlhf.core.schema import as_config


def apply_lora(model, cfg: AdapterConfig | dict | None, task_type: str = "CAUSAL_LM",
               modules_to_save: list[str] | None = None):
    """Wrap `model` with a LoRA adapter, or return it unchanged when `cfg` is None / disabled."""
    if cfg is None:
        return model
    cfg = as_config(AdapterConfig, cfg, "peft")
    if not cfg.enabled:
        return model
    if isinstance(model, PeftModel):
        # Stage 2 of a curriculum continues the same adapter (docs/methods.md §2.3 [default]).
        return model
    target = cfg.target_modules
    layers = None
    if cfg.top_layers:
        # Adapters only in the top N decoder layers: backward then stops at the lowest of them,
        # which is what makes the CPU demo affordable. None = every layer (the thesis setting).
        n_layers = int(model.config.num_hidden_layers)
        layers = list(range(max(0, n_layers - int(cfg.top_layers)), n_layers))
        if target == "all-linear":   # peft needs names when layers are selected: every decoder Linear
            target = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                             if isinstance(module, torch.nn.Linear) and ".layers." in name})
    config = LoraConfig(
        r=int(cfg.r), lora_alpha=int(cfg.alpha), lora_dropout=float(cfg.dropout),
        target_modules=list(target) if not isinstance(target, str) else target, bias="none",
        task_type=task_type, modules_to_save=modules_to_save, layers_to_transform=layers,
    )
    return get_peft_model(model, config)


def is_lora(model) -> bool:
    return isinstance(model, PeftModel)
