"""Responses of one checkpoint to evaluation prompt sets, with decoding settings fixed and recorded.

Every system compared in docs/methods.md §5.3-§5.5 must answer the same prompts under the same decoding
settings, so the settings travel with each output row:
    {"id", "dataset", "prompt", "response", "model", "decoding": {...}} (+ "category", "reference",
    "metadata" (what a verifiable reward grades against, e.g. {"id", "answer", "level"}), and
    "followup_responses" for MT-bench's later turns).
Prompts are encoded and left-padded by rlhf.data.prompt_encoding, the encoder PPO rollouts use
(segment by segment, exactly as the training templates encode them), and cut from the left when
longer than `max_prompt_tokens` (latest context survives).

`generate_file` takes the prompt records as a stream and answers GENERATED_PER_CHUNK batches of them
at a time, writing each chunk's rows as it goes to a file published when all are written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rlhf.data.jsonl import chunks, write_jsonl_atomic
from rlhf.data.prompt_encoding import encode_prompt, left_pad
from rlhf.data.templates import get_template
from rlhf.core.errors import ConfigError

DEFAULT_TINY_TOKENIZER = "embedded:smollm2-135m"
GENERATED_PER_CHUNK = 16
"""Batches of prompts answered before their rows are written. The seed is set once per file: greedy
rows, and sampled rows of one-turn prompts, are those of one call over all records; MT-bench's
follow-up turns are answered per chunk, so their samples depend on the chunk too."""


@dataclass(frozen=True)
class DecodingSettings:
    """Greedy by default: evaluation outputs should not depend on sampling luck unless asked
    (the thesis samples for its human study, docs/methods.md §5.8, which `do_sample=True` + `seed` covers)."""

    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    template: str = "chatml"
    max_prompt_tokens: int = 1024

    def check(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError("evaluate.decoding.max_new_tokens", f"must be >= 1, got {self.max_new_tokens}")
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ConfigError("evaluate.decoding", f"sampling needs temperature > 0 and 0 < top_p <= 1, "
                              f"got temperature={self.temperature}, top_p={self.top_p}")
        if self.max_prompt_tokens < 1:
            raise ConfigError("evaluate.decoding.max_prompt_tokens", f"must be >= 1, got {self.max_prompt_tokens}")


def decode_response(tokenizer, new_ids: Sequence[int], stop_strings: Sequence[str]) -> str:
    """Text up to the first EOS id, then up to the first stop string (templates may close a turn
    with a string the tokenizer does not treat as EOS)."""
    ids = list(new_ids)
    if tokenizer.eos_token_id in ids:
        ids = ids[: ids.index(tokenizer.eos_token_id)]
    text = tokenizer.decode(ids, skip_special_tokens=False)
    for stop in stop_strings:
        if stop and stop in text:
            text = text[: text.index(stop)]
    for special in tokenizer.all_special_tokens:
        text = text.replace(special, "")
    return text.strip()


def encode_batch(tokenizer, prompts: Sequence[list[dict]], decoding: DecodingSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded input_ids and attention_mask of the prompts: rlhf.data.prompt_encoding, as PPO
    rollouts encode them, cut from the left instead of dropped (every prompt must be answered)."""
    template = get_template(decoding.template, tokenizer.eos_token)
    encoded = [encode_prompt(tokenizer, template, p, decoding.max_prompt_tokens, overlong="truncate") for p in prompts]
    return left_pad(encoded, tokenizer.pad_token_id)


@torch.no_grad()
def generate_batch(model, tokenizer, prompts: Sequence[list[dict]], decoding: DecodingSettings) -> list[str]:
    template = get_template(decoding.template, tokenizer.eos_token)
    input_ids, attention_mask = encode_batch(tokenizer, prompts, decoding)
    device = next(model.parameters()).device
    options = {"max_new_tokens": decoding.max_new_tokens, "do_sample": decoding.do_sample,
               "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    if decoding.do_sample:
        options.update(temperature=decoding.temperature, top_p=decoding.top_p, top_k=0)
    output = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), **options)
    new_tokens = output[:, input_ids.shape[1]:].tolist()
    return [decode_response(tokenizer, ids, template.stop_strings) for ids in new_tokens]


def generate_responses(model, tokenizer, records: Sequence[dict], decoding: DecodingSettings, model_name: str,
                       batch_size: int = 8) -> list[dict]:
    """One output row per prompt record ({id, dataset, prompt, ...}); MT-bench `followups` are
    answered turn by turn after the model's own previous answers."""
    decoding.check()
    if batch_size < 1:
        raise ConfigError("evaluate.batch_size", f"must be >= 1, got {batch_size}")
    torch.manual_seed(decoding.seed)
    return answer_records(model, tokenizer, records, decoding, model_name, batch_size)


def answer_records(model, tokenizer, records: Sequence[dict], decoding: DecodingSettings, model_name: str,
                   batch_size: int) -> list[dict]:
    """generate_responses without setting the seed (the caller sets it once for many calls)."""
    was_training = model.training
    model.eval()
    conversations = [list(r["prompt"]) for r in records]
    answers: list[list[str]] = [[] for _ in records]
    turns = max((len(r.get("followups", [])) for r in records), default=0) + 1
    for turn in range(turns):
        active = [i for i, r in enumerate(records) if turn == 0 or turn <= len(r.get("followups", []))]
        for i in active:
            if turn > 0:
                conversations[i] += [{"role": "assistant", "content": answers[i][-1]},
                                     {"role": "user", "content": records[i]["followups"][turn - 1]}]
        for start in range(0, len(active), batch_size):
            chunk = active[start:start + batch_size]
            for i, text in zip(chunk, generate_batch(model, tokenizer, [conversations[i] for i in chunk], decoding)):
                answers[i].append(text)
    model.train(was_training)
    rows = []
    for record, answer in zip(records, answers):
        row = {"id": str(record["id"]), "dataset": record["dataset"], "prompt": record["prompt"],
               "response": answer[0], "model": model_name, "decoding": asdict(decoding)}
        for key in ("category", "reference", "metadata"):
            if key in record:
                row[key] = record[key]
        if len(answer) > 1:
            row["followup_responses"] = answer[1:]
        rows.append(row)
    return rows


def load_model_for_generation(source: str, tokenizer_source: str | None = None, dtype: str = "float32",
                              device: str = "cpu", tiny: dict | None = None):
    """(model, tokenizer) from an HF folder, hub id, `embedded:<name>` or `tiny` (random init)."""
    from rlhf.core.models import load_causal_lm, load_tokenizer

    tokenizer_source = tokenizer_source or (DEFAULT_TINY_TOKENIZER if source == "tiny" else source)
    tokenizer = load_tokenizer(tokenizer_source)
    model = load_causal_lm(source, dtype=dtype, tokenizer=tokenizer, tiny=tiny)
    return model.to(device), tokenizer


def generate_file(out_path: str | Path, records: Iterable[dict], source: str, decoding: DecodingSettings,
                  model_name: str | None = None, tokenizer_source: str | None = None, dtype: str = "float32",
                  device: str = "cpu", batch_size: int = 8) -> Path:
    """Load a checkpoint, answer every record and write the JSONL atomically (a killed run leaves
    no half file that a later judge step would trust); records are read as they are answered."""
    decoding.check()
    if batch_size < 1:
        raise ConfigError("evaluate.batch_size", f"must be >= 1, got {batch_size}")
    model, tokenizer = load_model_for_generation(source, tokenizer_source, dtype, device)
    torch.manual_seed(decoding.seed)

    def rows() -> Iterator[dict]:
        for chunk in chunks(records, GENERATED_PER_CHUNK * batch_size):
            yield from answer_records(model, tokenizer, chunk, decoding, model_name or str(source), batch_size)

    return write_jsonl_atomic(out_path, rows())
