"""Backbones: tiny random Llama, embedded SmolLM2 path resolution and cache,
pad token distinct from EOS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from rlhf.core import models
from rlhf.core.errors import RLHFError
from rlhf.core.models import (
    build_tiny_llama,
    default_cache_dir,
    embedded_model_path,
    load_backbone,
    load_causal_lm,
    load_tokenizer,
    prepare_tokenizer,
    resolve_source,
)

TINY_SPEC = {"source": "tiny", "tokenizer": "embedded:smollm2-135m", "dtype": "float32",
             "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128, "seed": 0}}


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("embedded:smollm2-135m")


def test_tiny_llama_shape_and_parameter_count(tok):
    model = load_backbone(TINY_SPEC, tok)
    # embeddings 49152 * 64 = 3,145,728 (lm_head tied, no extra weights)
    # per layer: q,k,v,o 4 * 64*64 = 16,384; gate,up,down 3 * 64*128 = 24,576; 2 RMSNorms 128 -> 41,088
    # 2 layers 82,176 + final norm 64  => 3,227,968
    assert sum(p.numel() for p in model.parameters()) == 3_227_968
    assert model.config.vocab_size == len(tok) == 49152
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight
    assert model.config.pad_token_id == 0 and model.config.eos_token_id == 2
    logits = model(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, 49152) and logits.dtype == torch.float32


def test_tiny_llama_is_seeded_and_leaves_global_rng_alone(tok):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_tiny_llama(tok, seed=5)
    after = torch.rand(1)
    b = build_tiny_llama(tok, seed=5)
    c = build_tiny_llama(tok, seed=6)
    assert torch.equal(before, after)  # fork_rng: building a model does not move the caller's RNG
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.model.layers[0].self_attn.q_proj.weight, c.model.layers[0].self_attn.q_proj.weight)


def test_tiny_needs_its_tokenizer():
    with pytest.raises(ValueError, match="tiny model needs the tokenizer"):
        load_causal_lm("tiny")


def test_pad_is_distinct_from_eos(tok):
    # The embedded GGUF tokenizer ships pad = eos = <|im_end|> (id 2); the project's pad is <|endoftext|> (id 0).
    raw = AutoTokenizer.from_pretrained(resolve_source("embedded:smollm2-135m"))
    assert raw.pad_token_id == raw.eos_token_id == 2
    assert (tok.pad_token, tok.pad_token_id, tok.eos_token, tok.eos_token_id) == ("<|endoftext|>", 0, "<|im_end|>", 2)
    assert tok.padding_side == "right"


def test_pad_token_is_added_when_no_candidate_exists():
    # Vocabulary {"a": 0, "</s>": 1} has neither <|endoftext|> nor <|pad|>: a new id 2 is added.
    backend = Tokenizer(WordLevel({"a": 0, "</s>": 1}, unk_token="a"))
    bare = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>")
    prepared = prepare_tokenizer(bare)
    assert (prepared.pad_token, prepared.pad_token_id, prepared.eos_token_id) == ("<|pad|>", 2, 1)


def test_default_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RLHF_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("RLHF_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "rlhf"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "rlhf"


def _fake_converted(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model.safetensors").write_bytes(b"")
    return folder


def test_embedded_path_uses_a_complete_cache_without_converting(monkeypatch, tmp_path):
    def no_conversion(name):
        raise AssertionError("a complete cache must not be converted again")

    monkeypatch.setattr(models, "_gguf_location", no_conversion)
    folder = _fake_converted(tmp_path / "explicit" / "smollm2-135m")
    assert resolve_source("embedded:smollm2-135m", cache_dir=tmp_path / "explicit") == str(folder)
    # Without an explicit cache_dir the env var decides.
    env_folder = _fake_converted(tmp_path / "env" / "smollm2-135m")
    monkeypatch.setenv("RLHF_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_source("embedded:smollm2-135m") == str(env_folder)
    # Hub ids and local paths pass through untouched.
    assert resolve_source("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_source(tmp_path / "x") == str(tmp_path / "x")


def test_half_written_cache_is_not_trusted(monkeypatch, tmp_path):
    # config.json without weights (an interrupted copy) -> conversion is attempted again.
    (tmp_path / "smollm2-135m").mkdir()
    (tmp_path / "smollm2-135m" / "config.json").write_text("{}")
    calls = []

    def record(name):
        calls.append(name)
        raise FileNotFoundError("stop here")

    monkeypatch.setattr(models, "_gguf_location", record)
    with pytest.raises(FileNotFoundError, match="stop here"):
        embedded_model_path("smollm2-135m", tmp_path)
    assert calls == ["smollm2-135m"]


def test_unknown_embedded_name(tmp_path):
    with pytest.raises(RLHFError, match="unknown embedded model 'gpt5'"):
        embedded_model_path("gpt5", tmp_path)


@pytest.mark.slow
def test_real_conversion_into_a_fresh_cache(monkeypatch, tmp_path, tok):
    # Loads the ~270 MB dequantized model: SmolLM2-135M-Instruct has 30 layers of width 576,
    # 134,515,008 parameters (embeddings tied).
    monkeypatch.setenv("RLHF_CACHE_DIR", str(tmp_path))
    folder = Path(resolve_source("embedded:smollm2-135m"))
    assert folder == tmp_path / "smollm2-135m"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_source("embedded:smollm2-135m") == str(folder)
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # second call: cache hit

    model = load_backbone({"source": "embedded:smollm2-135m"}, tok)
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (30, 576)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.config.pad_token_id == 0
    prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    inputs = tok(prompt, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, inputs["input_ids"].shape[1]:])
