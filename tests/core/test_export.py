"""Export of trained models as plain HF folders (rlhf/core/export.py), unsharded path.

What the module promises: a LoRA model gives `adapter/` (peft folder) and `merged/` (plain
weights the next stage loads) that both reproduce the trained model; metadata lands next to the
weights; each folder is written into a hidden staging folder and renamed into place, so a save
that fails midway leaves no partial folder and keeps the previous export. The sharded path is
covered in tests/core/test_sharding.py.
"""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhf.core.export import export_hf, save_pretrained_atomic
from rlhf.core.lora import apply_lora
from rlhf.core.models import build_tiny_llama, load_tokenizer

PROBE = torch.tensor([[1, 17, 305, 9, 2, 44]])
LORA = {"r": 4, "alpha": 8, "dropout": 0.0}


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("embedded:smollm2-135m")


def base_model(tok):
    return build_tiny_llama(tok, num_layers=1, seed=0).eval()


def trained_lora(tok):
    """A LoRA model whose B matrices are non-zero, as after training: peft starts B at zero, and
    an all-zero adapter would make merged == base and hide a merge that drops the adapter."""
    model = apply_lora(base_model(tok), LORA).eval()
    with torch.random.fork_rng():
        torch.manual_seed(1)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.data.normal_(std=0.05)
    return model


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=PROBE).logits


def hidden_entries(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


class FailingTokenizer:
    """Wraps a tokenizer; its `fail_on`-th save_pretrained raises, as a full disk would."""

    def __init__(self, tokenizer, fail_on: int = 1):
        self.tokenizer, self.fail_on, self.calls = tokenizer, fail_on, 0

    def save_pretrained(self, folder, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_on:
            (folder / "tokenizer.json").write_text("{half")  # something half-written first
            raise OSError("No space left on device")
        return self.tokenizer.save_pretrained(folder, *args, **kwargs)


# ---------------------------------------------------------------- export_hf


def test_lora_export_writes_merged_and_adapter_that_reproduce_the_model(tok, tmp_path):
    model = trained_lora(tok)
    expected = logits(model)
    assert (expected - logits(base_model(tok))).abs().max() > 1e-3  # the adapter changes the output

    merged_dir = export_hf(model, tok, tmp_path / "sft", metadata={"stage": "sft"})

    assert merged_dir == tmp_path / "sft" / "merged"
    assert sorted(p.name for p in (tmp_path / "sft").iterdir()) == ["adapter", "merged"]
    # merged/: plain safetensors weights, no peft files, loads without peft
    assert (merged_dir / "model.safetensors").is_file()
    assert not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert not any("lora_" in name for name, _ in merged.named_parameters())
    torch.testing.assert_close(logits(merged), expected, atol=1e-5, rtol=0)
    # adapter/: a peft folder that, on the same base, gives the same logits
    adapter_dir = tmp_path / "sft" / "adapter"
    assert (adapter_dir / "adapter_config.json").is_file()
    assert (adapter_dir / "adapter_model.safetensors").is_file()
    reloaded = PeftModel.from_pretrained(base_model(tok), adapter_dir).eval()
    torch.testing.assert_close(logits(reloaded), expected, atol=1e-6, rtol=0)


def test_export_leaves_the_training_model_unmerged(tok, tmp_path):
    # export merges a copy: training (and a later export) continues on the adapter
    model = trained_lora(tok)
    before = logits(model)
    export_hf(model, tok, tmp_path / "out")
    assert isinstance(model, PeftModel)
    assert any("lora_A" in name for name, _ in model.named_parameters())
    torch.testing.assert_close(logits(model), before, atol=0, rtol=0)


def test_metadata_and_tokenizer_are_written_into_both_folders(tok, tmp_path):
    metadata = {"stage": "reward", "base": "tiny", "step": 12}
    export_hf(trained_lora(tok), tok, tmp_path / "rm", metadata=metadata)
    for sub in ("merged", "adapter"):
        folder = tmp_path / "rm" / sub
        assert json.loads((folder / "rlhf_metadata.json").read_text()) == metadata
        reloaded = AutoTokenizer.from_pretrained(folder)
        assert reloaded.pad_token == tok.pad_token and len(reloaded) == len(tok)


def test_no_metadata_means_no_metadata_file(tok, tmp_path):
    export_hf(trained_lora(tok), tok, tmp_path / "out")
    assert not (tmp_path / "out" / "merged" / "rlhf_metadata.json").exists()
    assert not (tmp_path / "out" / "adapter" / "rlhf_metadata.json").exists()


def test_full_fine_tune_export_has_no_adapter_folder(tok, tmp_path):
    model = base_model(tok)
    merged_dir = export_hf(model, tok, tmp_path / "full", metadata={"stage": "sft"})
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["merged"]
    torch.testing.assert_close(logits(AutoModelForCausalLM.from_pretrained(merged_dir).eval()), logits(model),
                               atol=0, rtol=0)


def test_only_rank_zero_writes(tok, tmp_path):
    # other ranks get the path the merged model will have, and write nothing
    out = export_hf(trained_lora(tok), tok, tmp_path / "out", is_global_zero=False)
    assert out == tmp_path / "out" / "merged"
    assert not (tmp_path / "out").exists()


def test_failed_merged_save_leaves_no_partial_merged_folder(tok, tmp_path):
    # save order is adapter, then merged: the 2nd tokenizer save (into merged's staging) fails
    with pytest.raises(OSError, match="No space left"):
        export_hf(trained_lora(tok), FailingTokenizer(tok, fail_on=2), tmp_path / "out")
    assert not (tmp_path / "out" / "merged").exists()
    assert hidden_entries(tmp_path / "out") == []
    # the adapter folder was published before the failure, complete
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()


# ---------------------------------------------------------------- save_pretrained_atomic


def test_atomic_save_failure_leaves_no_folder_and_no_staging(tok, tmp_path):
    with pytest.raises(OSError):
        save_pretrained_atomic(base_model(tok), FailingTokenizer(tok), tmp_path / "merged", {"stage": "sft"})
    assert list(tmp_path.iterdir()) == []


def test_atomic_save_failure_keeps_the_previous_version(tok, tmp_path):
    target = tmp_path / "merged"
    save_pretrained_atomic(base_model(tok), tok, target, {"version": 1})
    files_before = sorted(p.name for p in target.iterdir())
    with pytest.raises(OSError):
        save_pretrained_atomic(trained_lora(tok).merge_and_unload(), FailingTokenizer(tok), target, {"version": 2})
    assert sorted(p.name for p in target.iterdir()) == files_before
    assert json.loads((target / "rlhf_metadata.json").read_text()) == {"version": 1}
    assert hidden_entries(tmp_path) == []
    torch.testing.assert_close(logits(AutoModelForCausalLM.from_pretrained(target).eval()), logits(base_model(tok)),
                               atol=0, rtol=0)


def test_atomic_save_replaces_the_old_folder_whole(tok, tmp_path):
    # a file only the old version had must not survive next to the new weights
    target = tmp_path / "merged"
    save_pretrained_atomic(base_model(tok), tok, target, {"version": 1})
    (target / "stale.txt").write_text("from the old export")
    assert save_pretrained_atomic(base_model(tok), None, target, {"version": 2}) == target
    assert not (target / "stale.txt").exists()
    assert not (target / "tokenizer.json").exists()  # tokenizer None: weights only
    assert json.loads((target / "rlhf_metadata.json").read_text()) == {"version": 2}
    assert hidden_entries(tmp_path) == []
