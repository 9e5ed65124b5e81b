"""FSDP2 helpers (rlhf/core/sharding.py) and export of a sharded model, in one process.

A world of size 1 on gloo is enough to run `fully_shard` for real (parameters become DTensors,
state dicts are gathered through torch.distributed.checkpoint); the 2-process comparison with a
single-process run lives in tests/sft/test_train_sft.py (slow, distributed).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from transformers import AutoModelForCausalLM

from rlhf.core.export import export_hf
from rlhf.core.lora import apply_lora
from rlhf.core.models import build_tiny_llama, load_tokenizer
from rlhf.core.sharding import decoder_layers, full_state_dict, shard_model

PROBE = torch.tensor([[1, 4093, 198, 26843, 2, 198, 1, 520, 9531, 198]])
LORA = {"r": 4, "alpha": 8, "dropout": 0.0}


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("embedded:smollm2-135m")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    if dist.is_initialized():
        pytest.skip("a process group already exists in this pytest process")
    store = dist.FileStore(str(tmp_path_factory.mktemp("pg") / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    yield init_device_mesh("cpu", (1,), mesh_dim_names=("data_parallel",))
    dist.destroy_process_group()


def _is_dtensor(p) -> bool:
    return type(p).__name__ == "DTensor"


def _lora_with_nonzero_b(model):
    # peft starts B at zero (adapter = identity); give it values so a lost adapter would show.
    wrapped = apply_lora(model, LORA)
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    return wrapped


def test_decoder_layers_are_the_repeated_blocks(tok):
    model = build_tiny_llama(tok, num_layers=3)
    blocks = decoder_layers(model)
    assert [type(b).__name__ for b in blocks] == ["LlamaDecoderLayer"] * 3
    assert blocks == list(model.model.layers)
    assert len(decoder_layers(apply_lora(model, LORA))) == 3  # found through the peft wrapper too


def test_full_state_dict_of_an_unsharded_model_is_a_detached_cpu_copy(tok):
    model = build_tiny_llama(tok)
    state = full_state_dict(model)
    assert state.keys() == model.state_dict().keys()
    assert all(not v.requires_grad and v.device.type == "cpu" for v in state.values())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_sharded_model_matches_the_original(tok, mesh):
    reference = build_tiny_llama(tok).eval()
    sharded = shard_model(copy.deepcopy(reference), mesh).eval()
    assert all(_is_dtensor(p) for p in sharded.parameters())
    with torch.no_grad():
        torch.testing.assert_close(sharded(PROBE).logits, reference(PROBE).logits, atol=1e-6, rtol=0)
    state = full_state_dict(sharded)
    assert all(not _is_dtensor(v) for v in state.values())
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(state[key], value, atol=0, rtol=0)


def test_export_of_a_sharded_lora_model_reloads(tok, mesh, tmp_path):
    reference = _lora_with_nonzero_b(build_tiny_llama(tok)).eval()
    sharded = shard_model(copy.deepcopy(reference), mesh).eval()
    merged_dir = export_hf(sharded, tok, tmp_path / "model", {"stage": "test"})
    assert (tmp_path / "model" / "adapter" / "adapter_model.safetensors").is_file()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    # Same checkpoint shape as an unsharded export: the tiny model's tied embeddings stay tied.
    assert merged.config.tie_word_embeddings
    assert merged.get_input_embeddings().weight is merged.get_output_embeddings().weight
    with torch.no_grad():
        expected = reference(PROBE).logits
        assert (expected - build_tiny_llama(tok).eval()(PROBE).logits).abs().max() > 1e-3
        torch.testing.assert_close(merged(PROBE).logits, expected, atol=1e-5, rtol=0)
