"""Saving trained models as plain HF folders (artifacts A2, A7, A10 in METHODS §1.3).

A LoRA run writes both the adapter (`adapter/`) and the merged weights (`merged/`); the merged
folder is what the next stage loads, so stages never depend on peft being configured the same way.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

from peft import PeftModel

from rlhf.core.sharding import full_state_dict


def _atomic_dir(target: Path):
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))


def _publish(staging: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


def save_pretrained_atomic(model, tokenizer, target: str | Path, metadata: dict | None = None,
                           state_dict: dict | None = None) -> Path:
    target = Path(target)
    staging = _atomic_dir(target)
    try:
        model.save_pretrained(staging, safe_serialization=True, state_dict=state_dict)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        if metadata:
            (staging / "rlhf_metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True))
        _publish(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def export_hf(model, tokenizer, out_dir: str | Path, metadata: dict | None = None, is_global_zero: bool = True) -> Path:
    """Write `out_dir/merged` (always) and `out_dir/adapter` (LoRA runs); returns the merged folder.

    Collective under FSDP2: every rank must call it; only rank zero writes.
    """
    out_dir = Path(out_dir)
    state = full_state_dict(model)
    if not is_global_zero:
        return out_dir / "merged"
    clone = copy.deepcopy(model).cpu() if not _is_sharded(model) else _unsharded_copy(model, state)
    if isinstance(clone, PeftModel):
        save_pretrained_atomic(clone, tokenizer, out_dir / "adapter", metadata)
        clone = clone.merge_and_unload()
    save_pretrained_atomic(clone, tokenizer, out_dir / "merged", metadata)
    return out_dir / "merged"


def _is_sharded(model) -> bool:
    return any(type(p).__name__ == "DTensor" for p in model.parameters())


def _unsharded_copy(model, state: dict):
    """Rebuild an unsharded CPU twin of a sharded model from its gathered full state dict."""
    import torch

    base = model.get_base_model() if isinstance(model, PeftModel) else model
    with torch.device("meta"):
        twin = type(base)._from_config(base.config)  # same head: causal LM, sequence classifier, ...
    if isinstance(model, PeftModel):
        from peft import get_peft_model

        twin = get_peft_model(twin, model.peft_config["default"])
    # to_empty gives each module its own storage, which silently unties tied embeddings; re-tie
    # so the export has the same shape (and tie_word_embeddings) as an unsharded one.
    twin.to_empty(device="cpu")
    twin.tie_weights()
    twin.load_state_dict(state)
    return twin
