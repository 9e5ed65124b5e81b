"""Rollout generation and the response log-prob forward for PPO (docs/methods.md §4.2, §4.3, §4.10).

Prompts are encoded and left-padded by rlhf.data.prompt_encoding (shared with evaluation).
Layout shared by generation and training: a row is the left-padded prompt followed by the
right-padded response, `[pad pad p1 p2 p3 | r1 r2 EOS pad]`; attention mask 1 on real prompt
tokens and on response tokens up to and including the first EOS; position ids = cumsum(mask) − 1.
Generation runs the same positions through the KV cache, so the log-probs seen at sampling time
equal the ones the training forward recomputes (up to float rounding), whatever the padding.

Sampling is inverse-CDF with one uniform per row and step hashed from (row seed, step), the row
seed itself hashed from (run seed, PPO step, prompt id, sample index): a response depends on its
prompt and the step only, never on batch composition, rank layout or global RNG state. That is what makes
single / DDP / FSDP2 rollouts identical and a resumed run replay the uninterrupted one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from rlhf.core.errors import ConfigError
from rlhf.core.token_losses import entropy_from_logits, logprobs_from_logits

_GOLDEN = 0x9E3779B97F4A7C15 - 2**64
_MIX1 = 0xBF58476D1CE4E5B9 - 2**64
_MIX2 = 0x94D049BB133111EB - 2**64


@dataclass
class Generation:
    response_ids: torch.Tensor  # [B, R] long, pad after EOS
    response_mask: torch.Tensor  # [B, R] long, 1 through the first EOS
    logprobs: torch.Tensor  # [B, R] float32, log π(y_t) under temperature-scaled logits; 0 on padding
    ended: torch.Tensor  # [B] bool, the row produced EOS
    entropy: torch.Tensor  # [B, R] float32, entropy of the temperature-scaled policy; 0 on padding
    hidden: torch.Tensor | None = None  # [B, R, H] last-layer state that predicted token t (with_hidden=True)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """cumsum(mask) − 1, clamped at 0: real tokens count 0, 1, 2, … whatever the left padding."""
    return (attention_mask.long().cumsum(1) - 1).clamp_min(0)


def sample_seeds(seed: int, step: int, prompt_ids: list[str], n_samples: int) -> torch.Tensor:
    """One int64 seed per (prompt, sample), prompt-major (rows of prompt i are i·n … i·n + n − 1)."""
    out = []
    for pid in prompt_ids:
        for k in range(n_samples):
            digest = hashlib.blake2b(f"{seed}|{step}|{pid}|{k}".encode(), digest_size=8).digest()
            out.append(int.from_bytes(digest, "little", signed=True))
    return torch.tensor(out, dtype=torch.long)


def _shift_right(x: torch.Tensor, n: int) -> torch.Tensor:
    """Logical right shift on int64 (torch's >> is arithmetic)."""
    return (x >> n) & ((1 << (64 - n)) - 1)


def _splitmix64(x: torch.Tensor) -> torch.Tensor:
    x = x + _GOLDEN
    x = (x ^ _shift_right(x, 30)) * _MIX1
    x = (x ^ _shift_right(x, 27)) * _MIX2
    return x ^ _shift_right(x, 31)


def uniform_from_seeds(seeds: torch.Tensor, step: int) -> torch.Tensor:
    """One u ∈ (0, 1) per row, hashed from (row seed, decoding step), float64 [B, 1]."""
    bits = _splitmix64(_splitmix64(seeds) + step)
    return ((_shift_right(bits, 11).double() + 0.5) / float(2**53))[:, None]


def sample_from_logits(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: the first token whose cumulative probability exceeds u (float64 CDF,
    so filtered tokens, which have zero width, are never picked)."""
    cdf = torch.softmax(logits.double(), dim=-1).cumsum(-1)
    token = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
    return token.squeeze(-1).clamp_max(logits.size(-1) - 1)


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Top-k then nucleus (top-p) filtering: tokens outside get −inf (Qwen top-p 0.9, docs/methods.md §4.2).

    Top-p keeps the smallest set of most likely tokens whose mass reaches p (always ≥ 1 token).
    """
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = probs.cumsum(-1) - probs
        remove_sorted = mass_before >= top_p
        remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


def response_mask_from_eos(response_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 on tokens up to and including the first EOS, 0 after; all 1 for a row that never ends."""
    is_eos = (response_ids == eos_id).long()
    return ((is_eos.cumsum(1) - is_eos) == 0).long()


@torch.no_grad()
def generate(model, query_ids: torch.Tensor, query_mask: torch.Tensor, seeds: torch.Tensor, *, eos_id: int,
             pad_id: int, max_new_tokens: int, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             fixed_length: bool = False, with_hidden: bool = False) -> Generation:
    """Sample responses with the KV cache in eval mode (training mode restored after).

    Besides the tokens it keeps what PPO's experience needs from the same forwards — log-probs,
    entropy and (with_hidden) the last-layer states for a value head — so the old-policy forward
    over prompt + response need not be run again (docs/methods.md §4.3; equal to it up to KV-cache rounding).
    fixed_length=True runs all `max_new_tokens` steps even when every row has ended: FSDP2 ranks
    must call forward in lockstep, and a rank that stopped early would hang the others.
    """
    if temperature <= 0:
        raise ConfigError("stage.module.rollout.temperature", f"must be > 0 (use top_k=1 for greedy); got {temperature}")
    was_training = model.training
    model.eval()
    try:
        attention = query_mask.long()
        positions = position_ids(attention)
        out = prefill_once_per_prompt(model, query_ids, attention, positions, with_hidden)
        next_position = positions[:, -1:] + 1
        done = torch.zeros(query_ids.size(0), dtype=torch.bool, device=query_ids.device)
        tokens, logps, entropies, hiddens = [], [], [], []
        for t in range(max_new_tokens):
            logits = out.logits[:, -1].float() / temperature
            sampled = sample_from_logits(filter_logits(logits, top_k, top_p), uniform_from_seeds(seeds, t))
            token = torch.where(done, torch.full_like(sampled, pad_id), sampled)
            tokens.append(token)
            logps.append(logprobs_from_logits(logits, token))
            entropies.append(entropy_from_logits(logits))
            if with_hidden:
                hiddens.append(out.hidden_states[-1][:, -1])
            done = done | (token == eos_id)
            if t == max_new_tokens - 1 or (bool(done.all()) and not fixed_length):
                break
            attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
            out = model(input_ids=token[:, None], attention_mask=attention, position_ids=next_position,
                        past_key_values=out.past_key_values, use_cache=True, output_hidden_states=with_hidden)
            next_position = next_position + 1
    finally:
        model.train(was_training)
    response_ids = torch.stack(tokens, dim=1)
    mask = response_mask_from_eos(response_ids, eos_id)
    real = mask.bool()  # where(), not * mask: a -inf log-prob of a pad token would turn into NaN
    return Generation(response_ids, mask, torch.where(real, torch.stack(logps, dim=1), 0.0),
                      (response_ids == eos_id).any(dim=1), torch.where(real, torch.stack(entropies, dim=1), 0.0),
                      hidden=torch.stack(hiddens, dim=1) if with_hidden else None)


def prefill_once_per_prompt(model, query_ids: torch.Tensor, attention: torch.Tensor, positions: torch.Tensor,
                            with_hidden: bool):
    """The prompt forward of `generate`, run once per distinct prompt row and copied to its samples
    (the G samples of a group share one padded prompt row): the KV cache, last logits and hidden
    states are those of the row's own prefill, at 1/G of its cost."""
    keys = torch.cat([query_ids, attention], dim=1)
    unique, inverse = torch.unique(keys, dim=0, return_inverse=True)
    if unique.size(0) == keys.size(0):
        return model(input_ids=query_ids, attention_mask=attention, position_ids=positions, use_cache=True,
                     logits_to_keep=1, output_hidden_states=with_hidden)
    first = torch.full((unique.size(0),), keys.size(0), dtype=torch.long, device=keys.device)
    first = first.scatter_reduce(0, inverse, torch.arange(keys.size(0), device=keys.device), reduce="amin")
    out = model(input_ids=query_ids[first], attention_mask=attention[first], position_ids=positions[first],
                use_cache=True, logits_to_keep=1, output_hidden_states=with_hidden)
    out.past_key_values.batch_select_indices(inverse)
    out.logits = out.logits[inverse]
    if with_hidden:
        out.hidden_states = tuple(h[inverse] for h in out.hidden_states)
    return out


def forward_response(model, query_ids: torch.Tensor, query_mask: torch.Tensor, response_ids: torch.Tensor,
                     response_mask: torch.Tensor, temperature: float = 1.0, with_hidden: bool = False):
    """One forward over prompt + response: (logprobs [B,R], logits [B,R,V], hidden [B,R,H] | None).

    Row t of each output is the state that predicts response token t (prompt end for t = 0), so
    the log-probs are exactly those of `generate` and the hidden states feed a value head at the
    same positions. Only the R response positions go through the LM head.
    """
    input_ids = torch.cat([query_ids, response_ids], dim=1)
    attention = torch.cat([query_mask, response_mask], dim=1).long()
    n = response_ids.size(1)
    out = model(input_ids=input_ids, attention_mask=attention, position_ids=position_ids(attention),
                logits_to_keep=n + 1, output_hidden_states=with_hidden, use_cache=False)
    logits = out.logits[:, :-1].float()
    if temperature != 1.0:  # skip a [B, R, V] copy (and its backward) in the common case
        logits = logits / temperature
    hidden = out.hidden_states[-1][:, -n - 1:-1] if with_hidden else None
    return logprobs_from_logits(logits, response_ids), logits, hidden
