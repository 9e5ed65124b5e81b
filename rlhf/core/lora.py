"""LoRA through peft (thesis Tables 3/5/8: r 16, alpha 32, all linear modules)."""

from __future__ import annotations

import torch
from peft import LoraConfig, PeftModel, get_peft_model


def apply_lora(model, cfg: dict | None, task_type: str = "CAUSAL_LM", modules_to_save: list[str] | None = None):
    """Wrap `model` with a LoRA adapter, or return it unchanged when `cfg` is None / disabled."""
    if not cfg or not cfg.get("enabled", True):
        return model
    if isinstance(model, PeftModel):
        # Stage 2 of a curriculum continues the same adapter (METHODS §2.3 [default]).
        return model
    target = cfg.get("target_modules", "all-linear")
    layers = None
    if cfg.get("top_layers"):
        # Adapters only in the top N decoder layers: backward then stops at the lowest of them,
        # which is what makes the CPU demo affordable. None = every layer (the thesis setting).
        n_layers = int(model.config.num_hidden_layers)
        layers = list(range(max(0, n_layers - int(cfg["top_layers"])), n_layers))
        if target == "all-linear":   # peft needs names when layers are selected: every decoder Linear
            target = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                             if isinstance(module, torch.nn.Linear) and ".layers." in name})
    config = LoraConfig(
        r=int(cfg.get("r", 16)), lora_alpha=int(cfg.get("alpha", 32)), lora_dropout=float(cfg.get("dropout", 0.05)),
        target_modules=list(target) if not isinstance(target, str) else target, bias="none",
        task_type=task_type, modules_to_save=modules_to_save, layers_to_transform=layers,
    )
    return get_peft_model(model, config)


def is_lora(model) -> bool:
    return isinstance(model, PeftModel)
