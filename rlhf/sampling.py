"""K sampled responses per prompt from a saved policy: the pipeline's "sample" stage (ICE-GRT §3.3)
and the evaluation generations both read responses this way."""

from __future__ import annotations

import torch

from rlhf.data.collate import length_mask, pad_sequences
from rlhf.data.templates import get_template
from rlhf.models import load_causal_lm, load_tokenizer


def response_texts(tokenizer, generated: torch.Tensor, prompt_width: int) -> list[str]:
    """Decode what follows the prompt, up to (not including) the first EOS."""
    texts = []
    for row in generated[:, prompt_width:].tolist():
        if tokenizer.eos_token_id in row:
            row = row[: row.index(tokenizer.eos_token_id)]
        texts.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return texts


@torch.no_grad()
def generate_batch(model, tokenizer, prompts: list[list[dict]], k: int, decoding: dict,
                   template: str = "chatml", max_prompt_tokens: int | None = None) -> list[list[str]]:
    """One left-padded `generate` call for a batch of prompts; k responses per prompt."""
    renderer = get_template(template, tokenizer.eos_token)
    ids = [tokenizer(renderer.render_prompt(p), add_special_tokens=False)["input_ids"] for p in prompts]
    if max_prompt_tokens:
        ids = [s[-max_prompt_tokens:] for s in ids]
    input_ids = pad_sequences(ids, tokenizer.pad_token_id, side="left")
    attention_mask = length_mask([len(s) for s in ids], input_ids.shape[1], side="left")
    settings = dict(decoding)
    if not settings.get("do_sample", True):
        settings = {k_: v for k_, v in settings.items() if k_ not in ("temperature", "top_p", "top_k")}
    out = model.generate(input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device),
                         num_return_sequences=k, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **settings)
    texts = response_texts(tokenizer, out.cpu(), input_ids.shape[1])
    return [texts[i * k:(i + 1) * k] for i in range(len(prompts))]


def sample_responses(model_dir: str, prompts: list[list[dict]], k: int, decoding: dict, batch_size: int = 16,
                     seed: int = 0, template: str = "chatml", max_prompt_tokens: int | None = None,
                     dtype: str = "float32") -> list[list[str]]:
    tokenizer = load_tokenizer(model_dir)
    model = load_causal_lm(model_dir, dtype=dtype, tokenizer=tokenizer).eval()
    torch.manual_seed(seed)
    per_call = max(1, batch_size // max(1, k))
    out: list[list[str]] = []
    for start in range(0, len(prompts), per_call):
        out += generate_batch(model, tokenizer, prompts[start:start + per_call], k, decoding, template,
                              max_prompt_tokens)
    return out
