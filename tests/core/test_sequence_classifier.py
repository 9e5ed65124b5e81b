"""load_sequence_classifier, the one loader of reward models and critics."""

from __future__ import annotations

import pytest
import torch

from rlhf.core.models import build_tiny_llama, load_backbone_tokenizer, load_sequence_classifier

TINY = {"seed": 5}


@pytest.fixture(scope="module")
def tok():
    return load_backbone_tokenizer({"source": "tiny", "tokenizer": "embedded:smollm2-135m"})


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tiny_classifier_shares_the_tiny_lm_body_and_is_reproducible(tok):
    model = load_sequence_classifier("tiny", tokenizer=tok, tiny=TINY)
    lm = build_tiny_llama(tok, **TINY)
    assert type(model).__name__ == "LlamaForSequenceClassification" and model.config.num_labels == 1
    assert same_tensors(model.base_model.state_dict(), lm.base_model.state_dict())
    assert model.config.pad_token_id == tok.pad_token_id
    again = load_sequence_classifier("tiny", tokenizer=tok, tiny=TINY)
    assert same_tensors(model.state_dict(), again.state_dict())
    assert load_sequence_classifier("tiny", "bfloat16", tokenizer=tok, tiny=TINY).dtype == torch.bfloat16


def test_a_loaded_lm_gives_its_body_and_a_seeded_head(tok):
    lm = build_tiny_llama(tok, seed=3)
    one, two = (load_sequence_classifier(lm, seed=7) for _ in range(2))
    assert same_tensors(one.base_model.state_dict(), lm.base_model.state_dict())
    assert torch.equal(one.score.weight, two.score.weight) and bool(one.score.weight.abs().sum() > 0)
    assert bool(load_sequence_classifier(lm, seed=7, zero_new_head=True).score.weight.abs().sum() == 0)


def test_folders_keep_a_saved_head_and_zero_only_a_new_one(tok, tmp_path):
    rm = load_sequence_classifier("tiny", tokenizer=tok, tiny=TINY)
    rm.save_pretrained(tmp_path / "rm", safe_serialization=True)
    build_tiny_llama(tok, **TINY).save_pretrained(tmp_path / "lm", safe_serialization=True)

    loaded = load_sequence_classifier(tmp_path / "rm", zero_new_head=True)
    assert same_tensors(loaded.state_dict(), rm.state_dict())          # an RM's trained head is kept
    critic = load_sequence_classifier(tmp_path / "lm", zero_new_head=True)
    assert bool(critic.score.weight.abs().sum() == 0)                  # a causal LM gets a zero head
    assert same_tensors(critic.base_model.state_dict(), rm.base_model.state_dict())


def test_tiny_needs_its_tokenizer():
    with pytest.raises(ValueError, match="tiny model needs the tokenizer"):
        load_sequence_classifier("tiny")
