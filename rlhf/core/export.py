"""Saving trained models as plain HF folders (artifacts A2, A7, A10 in docs/methods.md §1.3).

A LoRA run writes both the adapter (`adapter/`) and the merged weights (`merged/`); the merged
folder is what the next stage loads, so stages never depend on peft being configured the same way.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from peft import PeftModel

from rlhf.core.atomic import publish_folder
from rlhf.core.sharding import full_state_dict


def save_pretrained_atomic(model, tokenizer, target: str | Path, metadata: dict | None = None,
                           state_dict: dict | None = None, extra_files: dict[str, str] | None = None) -> Path:
    """One HF folder (weights, tokenizer, rlhf_metadata.json, `extra_files` {name: text}) published
    as a whole (rlhf.core.atomic), so a reader never finds a model without the files that go with it."""

    def write(folder: Path) -> None:
        model.save_pretrained(folder, safe_serialization=True, state_dict=state_dict)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        if metadata:
            (folder / "rlhf_metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True))
        for name, text in (extra_files or {}).items():
            (folder / name).write_text(text)

    return publish_folder(target, write)


def export_hf(model, tokenizer, out_dir: str | Path, metadata: dict | None = None, is_global_zero: bool = True,
              extra_files: dict[str, str] | None = None) -> Path:
    """Write `out_dir/merged` (always) and `out_dir/adapter` (LoRA runs), each with `extra_files`;
    returns the merged folder.

    Collective under FSDP2: every rank must call it; only rank zero writes.
    """
    out_dir = Path(out_dir)
    state = full_state_dict(model)
    if not is_global_zero:
        return out_dir / "merged"
    clone = copy.deepcopy(model).cpu() if not _is_sharded(model) else _unsharded_copy(model, state)
    if isinstance(clone, PeftModel):
        save_pretrained_atomic(clone, tokenizer, out_dir / "adapter", metadata, extra_files=extra_files)
        clone = clone.merge_and_unload()
    save_pretrained_atomic(clone, tokenizer, out_dir / "merged", metadata, extra_files=extra_files)
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
