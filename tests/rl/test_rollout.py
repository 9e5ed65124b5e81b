"""Rollout: masks from EOS, filtering, sampling, and log-probs that do not depend on padding."""

from __future__ import annotations

import math

import pytest
import torch

from rlhf.data.templates import get_template
from rlhf.core.errors import ConfigError
from rlhf.core.models import build_tiny_llama, load_backbone_tokenizer
from rlhf.data.prompt_encoding import encode_prompt, left_pad
from rlhf.rl.rollout import (filter_logits, forward_response, generate, position_ids, response_mask_from_eos,
                             sample_from_logits, sample_seeds, uniform_from_seeds)

EOS, PAD = 2, 0


@pytest.fixture(scope="module")
def tokenizer():
    return load_backbone_tokenizer({"source": "tiny", "tokenizer": "embedded:smollm2-135m"})


@pytest.fixture(scope="module")
def model(tokenizer):
    return build_tiny_llama(tokenizer, seed=3).eval()


def test_response_mask_counts_through_first_eos_and_ignores_pad_ids():
    ids = torch.tensor([[5, EOS, 7, PAD], [5, PAD, 7, 8], [EOS, PAD, PAD, PAD]])
    # row 0: tokens 5, EOS kept; row 1 never ends (a PAD id mid-response is a real token); row 2: EOS only
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    assert torch.equal(response_mask_from_eos(ids, EOS), expected)


def test_position_ids_start_at_first_real_token():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])
    assert position_ids(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 3]]


def test_filter_logits_top_k_and_top_p():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    # softmax: e^0..e^3 / 31.19 = 0.032, 0.087, 0.237, 0.644
    inf = float("-inf")
    assert filter_logits(logits, top_k=2).tolist() == [[inf, inf, 2.0, 3.0]]
    # top-p 0.8: keep 0.644 (mass before 0), 0.237 (mass before 0.644 < 0.8); drop the rest (0.881 >= 0.8)
    assert filter_logits(logits, top_p=0.8).tolist() == [[inf, inf, 2.0, 3.0]]
    # top-p 0.5: 0.237 has 0.644 before it >= 0.5 -> only the top token stays
    assert filter_logits(logits, top_p=0.5).tolist() == [[inf, inf, inf, 3.0]]


def test_inverse_cdf_sampling_picks_the_interval_containing_u():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.7]] * 3))
    u = torch.tensor([[0.05], [0.25], [0.95]], dtype=torch.float64)
    # CDF 0.1, 0.3, 1.0: 0.05 -> token 0, 0.25 -> token 1, 0.95 -> token 2
    assert sample_from_logits(logits, u).tolist() == [0, 1, 2]
    filtered = torch.tensor([[float("-inf"), 0.0, float("-inf")]])
    assert sample_from_logits(filtered, torch.tensor([[0.999]], dtype=torch.float64)).tolist() == [1]


def test_hashed_uniforms_are_uniform_and_seed_dependent():
    seeds = sample_seeds(0, 0, [str(i) for i in range(4000)], 1)
    u = uniform_from_seeds(seeds, 0).flatten()
    assert bool(((u > 0) & (u < 1)).all())
    # mean of U(0,1) is 0.5 with sd 1/sqrt(12 * 4000) = 0.0046: 0.02 is > 4 sd
    assert abs(float(u.mean()) - 0.5) < 0.02
    assert not torch.equal(uniform_from_seeds(seeds, 1), uniform_from_seeds(seeds, 0))
    assert torch.equal(sample_seeds(0, 5, ["a", "b"], 2), sample_seeds(0, 5, ["a", "b"], 2))
    assert len(set(sample_seeds(0, 5, ["a", "b"], 2).tolist())) == 4


def test_encode_prompt_drops_or_left_truncates(tokenizer):
    template = get_template("chatml")
    prompt = [{"role": "user", "content": "one two three four five six seven"}]
    full = encode_prompt(tokenizer, template, prompt, None)
    assert encode_prompt(tokenizer, template, prompt, len(full)) == full
    assert encode_prompt(tokenizer, template, prompt, len(full) - 1, "drop") is None
    assert encode_prompt(tokenizer, template, prompt, 5, "truncate") == full[-5:]
    with pytest.raises(ConfigError, match="overlong"):
        encode_prompt(tokenizer, template, prompt, 5, "cut")


def _prompts():
    return [[11, 12, 13, 14, 15, 16, 17], [21, 22], [31, 32, 33, 34]]


def test_generation_logprobs_equal_training_forward_under_padding(model):
    ids, mask = left_pad(_prompts(), PAD)
    seeds = sample_seeds(0, 0, ["a", "b", "c"], 1)
    gen = generate(model, ids, mask, seeds, eos_id=EOS, pad_id=PAD, max_new_tokens=6, temperature=0.7)
    logprobs, _, _ = forward_response(model, ids, mask, gen.response_ids, gen.response_mask, temperature=0.7)
    valid = gen.response_mask.bool()
    assert torch.allclose(logprobs[valid], gen.logprobs[valid], atol=1e-5)
    assert bool((gen.logprobs[~valid] == 0).all())


def test_generation_keeps_the_entropy_and_value_states_of_the_training_forward(model):
    """What PPO takes from the sampling forwards instead of a second pass (rollout.logprobs_from_generation):
    per-token entropy and the last-layer states a value head reads, at the positions that predict each token."""
    ids, mask = left_pad(_prompts(), PAD)
    seeds = sample_seeds(0, 1, ["a", "b", "c"], 1)
    gen = generate(model, ids, mask, seeds, eos_id=EOS, pad_id=PAD, max_new_tokens=6, temperature=0.7, with_hidden=True)
    _, logits, hidden = forward_response(model, ids, mask, gen.response_ids, gen.response_mask, temperature=0.7,
                                         with_hidden=True)
    valid = gen.response_mask.bool()
    probs = torch.softmax(logits.double(), dim=-1)
    entropy = -(probs * probs.log()).sum(-1)  # textbook form, independent of entropy_from_logits
    assert torch.allclose(gen.entropy[valid].double(), entropy[valid], atol=1e-5)
    assert bool((gen.entropy[~valid] == 0).all())
    assert gen.hidden.shape == hidden.shape
    assert torch.allclose(gen.hidden[valid], hidden[valid], atol=1e-5)
    assert generate(model, ids, mask, seeds, eos_id=EOS, pad_id=PAD, max_new_tokens=2).hidden is None


def test_each_row_is_the_same_whether_generated_alone_or_in_a_padded_batch(model):
    ids, mask = left_pad(_prompts(), PAD)
    seeds = sample_seeds(0, 3, ["a", "b", "c"], 1)
    batch = generate(model, ids, mask, seeds, eos_id=EOS, pad_id=PAD, max_new_tokens=5)
    for row, prompt in enumerate(_prompts()):
        alone_ids, alone_mask = left_pad([prompt], PAD)
        alone = generate(model, alone_ids, alone_mask, seeds[row:row + 1], eos_id=EOS, pad_id=PAD, max_new_tokens=5)
        width = alone.response_ids.size(1)
        assert torch.equal(batch.response_ids[row, :width], alone.response_ids[0])
        logprobs, _, _ = forward_response(model, alone_ids, alone_mask, alone.response_ids, alone.response_mask)
        assert torch.allclose(logprobs[0], batch.logprobs[row, :width], atol=1e-5)


def test_generation_stops_at_eos_and_pads_after(model):
    ids, mask = left_pad(_prompts(), PAD)
    seeds = sample_seeds(0, 0, ["a", "b", "c"], 1)

    def only_eos(_module, _inputs, output):  # all mass on EOS: every row ends at its first step
        output.logits[..., :] = float("-inf")
        output.logits[..., EOS] = 0.0
        return output

    handle = model.register_forward_hook(only_eos)
    try:
        gen = generate(model, ids, mask, seeds, eos_id=EOS, pad_id=PAD, max_new_tokens=4)
        fixed = generate(model, ids, mask, seeds, eos_id=EOS, pad_id=PAD, max_new_tokens=3, fixed_length=True)
    finally:
        handle.remove()
    assert gen.response_ids.tolist() == [[EOS]] * 3  # stopped after one step, no wasted steps
    assert gen.ended.tolist() == [True] * 3 and gen.response_mask.tolist() == [[1]] * 3
    assert torch.allclose(gen.logprobs, torch.zeros(3, 1))  # log 1 = 0
    # fixed length (FSDP2 lockstep): 3 steps, EOS then PAD, mask still ends at the EOS
    assert fixed.response_ids.tolist() == [[EOS, PAD, PAD]] * 3
    assert fixed.response_mask.tolist() == [[1, 0, 0]] * 3


def test_temperature_must_be_positive(model):
    ids, mask = left_pad(_prompts(), PAD)
    with pytest.raises(ConfigError, match="temperature"):
        generate(model, ids, mask, torch.zeros(3, dtype=torch.long), eos_id=EOS, pad_id=PAD, max_new_tokens=2,
                 temperature=0.0)


def test_logprob_of_forward_matches_log_softmax(model):
    ids, mask = left_pad(_prompts(), PAD)
    response = torch.tensor([[40, 41], [42, EOS], [43, 44]])
    rmask = response_mask_from_eos(response, EOS)
    with torch.no_grad():
        logprobs, _, _ = forward_response(model, ids, mask, response, rmask)
        alone = model(input_ids=torch.tensor([[21, 22, 42]])).logits[0, 1]
    # row 1 token 0 is predicted by the last prompt token (22): check against an unpadded forward
    expected = torch.log_softmax(alone.float(), -1)[42]
    assert math.isclose(float(logprobs[1, 0]), float(expected), abs_tol=1e-5)


def test_samples_of_one_prompt_share_one_prefill_and_match_their_own_generation(model):
    """G samples per prompt: the prompt forward runs once per distinct prompt (2 rows, not 4), and each
    sample's tokens, log-probs, entropy and value states are those it gets generated alone."""
    prompts = [_prompts()[0], _prompts()[0], _prompts()[1], _prompts()[1]]
    ids, mask = left_pad(prompts, PAD)
    seeds = sample_seeds(0, 2, ["a", "b"], 2)
    prefill_rows = []
    hook = model.register_forward_pre_hook(lambda _, args, kwargs: prefill_rows.append(kwargs["input_ids"].shape),
                                           with_kwargs=True)
    try:
        together = generate(model, ids, mask, seeds, eos_id=EOS, pad_id=PAD, max_new_tokens=6, temperature=0.7,
                            with_hidden=True)
    finally:
        hook.remove()
    assert prefill_rows[0] == (2, ids.size(1))  # one row per distinct prompt
    for row in range(4):
        alone = generate(model, ids[row:row + 1], mask[row:row + 1], seeds[row:row + 1], eos_id=EOS, pad_id=PAD,
                         max_new_tokens=6, temperature=0.7, with_hidden=True)
        n = alone.response_ids.size(1)
        assert together.response_ids[row, :n].tolist() == alone.response_ids[0].tolist()
        for field in ("logprobs", "entropy", "hidden"):
            assert torch.allclose(getattr(together, field)[row, :n], getattr(alone, field)[0], atol=1e-5), field
