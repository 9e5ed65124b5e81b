"""KL to SFT along replies (docs/algorithms.md §5.2) on hand-worked distributions and on the tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from rlhf.evaluate.generation import load_model_for_generation
from rlhf.evaluate.policy_kl import reply_batch, reply_kl, summed_token_kl


def test_summed_token_kl_of_a_worked_example():
    # p = softmax(0, 0) = (1/2, 1/2), q = softmax(ln 3, 0) = (3/4, 1/4):
    # KL = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3); the second position is masked out, the third equal (KL 0)
    logits = torch.tensor([[[0.0, 0.0], [5.0, 0.0], [1.0, 2.0]]])
    ref = torch.tensor([[[math.log(3.0), 0.0], [0.0, 5.0], [1.0, 2.0]]])
    kl = summed_token_kl(logits, ref, torch.tensor([[1.0, 0.0, 1.0]]))
    assert kl.shape == (1,) and kl.item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)


def test_reply_positions_predict_exactly_the_reply_tokens():
    _, tokenizer = load_model_for_generation("tiny")
    prompts = [[{"role": "user", "content": "Say hello."}], [{"role": "user", "content": "Hi"}]]
    ids, attention, predicts = reply_batch(tokenizer, prompts, ["Hello there, friend.", "Yes"], "chatml", 256)
    for row in range(2):
        n = int(attention[row].sum())
        reply = ids[row, 1:n][predicts[row, : n - 1].bool()].tolist()
        assert tokenizer.decode(reply).startswith(["Hello there, friend.", "Yes"][row])
        assert reply[-1] == tokenizer.eos_token_id or tokenizer.decode(reply).endswith("<|im_end|>\n")


def test_a_model_has_zero_kl_to_itself_and_positive_kl_to_another():
    torch.manual_seed(0)
    model, tokenizer = load_model_for_generation("tiny")
    other, _ = load_model_for_generation("tiny")
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    prompts, replies = [[{"role": "user", "content": "Say hello."}]] * 3, ["Hello.", "Hi there", "Good day to you"]
    assert reply_kl(model, model, tokenizer, prompts, replies, batch_size=2) == [0.0, 0.0, 0.0]
    assert all(v > 0 for v in reply_kl(other, model, tokenizer, prompts, replies, batch_size=2))
