"""The shared-prompt forward gives the plain forward's log-probs, logits, hidden states and gradients,
whatever the row order, padding and response lengths, with each prompt's tokens computed once."""

from __future__ import annotations

import pytest
import torch

from rlhf.core.errors import ConfigError
from rlhf.core.lora import apply_lora
from rlhf.core.models import build_tiny_llama, load_backbone_tokenizer
from rlhf.rl.rollout import forward_response
from rlhf.rl.shared_prompt import forward_response_shared, pack_rollout, prompt_groups, real_prompts

PAD = 0


@pytest.fixture(scope="module")
def model():
    tokenizer = load_backbone_tokenizer({"source": "tiny", "tokenizer": "embedded:smollm2-135m"})
    return build_tiny_llama(tokenizer, seed=5).eval()


def rollout_batch():
    """Two prompts (3 and 5 real tokens, left-padded to 5) x 3 samples, rows interleaved, responses
    of 1 to 4 real tokens right-padded to 4; one response shares its first two tokens with another."""
    short, long = [11, 12, 13], [21, 22, 23, 24, 25]
    prompts = [short, long, short, long, short, long]
    responses = [[31, 32], [41, 42, 43, 44], [31, 32, 33, 34], [45], [35, 36, 37], [46, 47]]
    query = torch.tensor([[PAD] * (5 - len(p)) + p for p in prompts])
    query_mask = torch.tensor([[0] * (5 - len(p)) + [1] * len(p) for p in prompts])
    response = torch.tensor([r + [PAD] * (4 - len(r)) for r in responses])
    response_mask = torch.tensor([[1] * len(r) + [0] * (4 - len(r)) for r in responses])
    return query, query_mask, response, response_mask


def test_rows_are_grouped_by_their_real_prompt_tokens_not_their_position():
    query, query_mask, _, _ = rollout_batch()
    assert prompt_groups(real_prompts(query, query_mask)) == [[0, 2, 4], [1, 3, 5]]


def test_each_prompt_is_packed_once():
    query, query_mask, response, response_mask = rollout_batch()
    packed = pack_rollout(query, query_mask, response, response_mask, PAD)
    tokens = int((packed.input_ids != PAD).sum())  # no real token of this batch has the pad id
    # short group: its 3 responses share only the prompt (the third starts 35), so prompt 3 + responses
    # 2 + 4 + 3 = 12; long group: prompt 5 + 4 + 1 + 2 = 12 -> 24 tokens instead of 6 prompts (24) + 16 = 40
    assert tokens == 24
    assert packed.predictor.shape == (int(response_mask.sum()), 2)


def test_logprobs_logits_and_hidden_equal_the_plain_forward(model):
    query, query_mask, response, response_mask = rollout_batch()
    with torch.no_grad():
        plain = forward_response(model, query, query_mask, response, response_mask, temperature=0.7, with_hidden=True)
        shared = forward_response_shared(model, query, query_mask, response, response_mask, temperature=0.7,
                                         with_hidden=True, pad_token_id=PAD)
    real = response_mask.bool()
    for a, b in zip(plain, shared):
        assert torch.allclose(a[real], b[real], atol=1e-5), (a[real] - b[real]).abs().max()
    assert bool((shared[0][~real] == 0).all())


def test_gradients_equal_the_plain_forward(model):
    query, query_mask, response, response_mask = rollout_batch()
    torch.manual_seed(0)
    lora = apply_lora(build_tiny_llama(load_backbone_tokenizer({"source": "tiny", "tokenizer": "embedded:smollm2-135m"}),
                                       seed=5), {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"})
    for name, p in lora.named_parameters():
        if "lora_B" in name:  # B = 0 at init would make every LoRA-A gradient 0
            torch.nn.init.normal_(p, std=0.02)
    weights = torch.linspace(0.5, 1.5, response.numel()).view_as(response) * response_mask

    def grads(forward):
        lora.zero_grad(set_to_none=True)
        logprobs = forward(lora, query, query_mask, response, response_mask)[0]
        (logprobs * weights).sum().backward()
        return {n: p.grad.clone() for n, p in lora.named_parameters() if p.grad is not None}

    plain = grads(forward_response)
    shared = grads(lambda *a: forward_response_shared(*a, with_logits=False, pad_token_id=PAD))
    assert plain.keys() == shared.keys() and plain
    for name in plain:
        assert torch.allclose(plain[name], shared[name], atol=1e-5, rtol=1e-4), name


def test_any_row_order_gives_the_same_per_row_numbers(model):
    query, query_mask, response, response_mask = rollout_batch()
    order = torch.tensor([5, 0, 3, 1, 4, 2])
    with torch.no_grad():
        base = forward_response_shared(model, query, query_mask, response, response_mask, pad_token_id=PAD)[0]
        shuffled = forward_response_shared(model, query[order], query_mask[order], response[order],
                                           response_mask[order], pad_token_id=PAD)[0]
    assert torch.allclose(base[order], shuffled, atol=1e-6)


def test_flash_attention_is_refused_naming_the_key(model):
    query, query_mask, response, response_mask = rollout_batch()
    model.config._attn_implementation = "flash_attention_2"
    try:
        with pytest.raises(ConfigError, match="update.shared_prompt"):
            forward_response_shared(model, query, query_mask, response, response_mask)
    finally:
        model.config._attn_implementation = "sdpa"
