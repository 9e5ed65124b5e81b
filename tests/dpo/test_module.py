"""DPOModule on the tiny random Llama: log-probs, packing, reference policies, bad input, export."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rlhf.core.errors import ConfigError, DataError
from rlhf.data.preference_datamodule import CUT, EMPTY, IDENTICAL, PreferenceCollator, PreferenceDataModule
from rlhf.dpo.logprobs import response_logprobs
from rlhf.dpo.module import DPOModule

TINY = {"source": "tiny", "tokenizer": "embedded:smollm2-135m", "dtype": "float32",
        "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128, "seed": 0}}
LORA = {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0}
PAIRS = [{"prompt": f"Question {i}: say something{' really' * (i % 3)} kind.",
          "chosen": f"Happy to help, friend {i}.", "rejected": f"Go away {i}, {'now ' * (i % 4)}."} for i in range(6)]


def make_module(peft=LORA, **settings):
    module = DPOModule(model=TINY, peft=peft, **settings)
    module.configure_model()
    return module


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def datamodule(tokenizer, path, **kw):
    args = {"sources": [{"path": str(path), "adapter": "pairs"}], "max_length": 64, "min_prompt_tokens": 8,
            "val_fraction": 0.0, "batch_size": 6}
    dm = PreferenceDataModule(tokenizer, **{**args, **kw})
    dm.setup()
    return dm


def perturb_adapter(module, seed=0):
    """LoRA B starts at 0 (policy = reference); random B makes the policy differ from its base."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)


@pytest.fixture(scope="module")
def lora_module():
    module = make_module()
    perturb_adapter(module)
    return module


@pytest.fixture(scope="module")
def groups(lora_module, tmp_path_factory):
    path = write(tmp_path_factory.mktemp("dpo") / "pairs.jsonl", PAIRS)
    return datamodule(lora_module.tokenizer, path).train_set


def test_response_logprobs_equal_a_forward_per_sequence(lora_module, groups):
    batch = PreferenceCollator(lora_module.tokenizer.pad_token_id, shared_prefix=True)(groups)
    with torch.no_grad():
        sums, lengths = response_logprobs(lora_module.model, batch)
        expected, counts = [], []
        for group in groups:
            for seq, start in zip(group["input_ids"], group["prompt_lengths"]):
                logits = lora_module.model(input_ids=torch.tensor([seq])).logits[0]
                token_logps = torch.log_softmax(logits[:-1].float(), -1).gather(-1, torch.tensor(seq[1:])[:, None])
                expected.append(token_logps[start - 1:].sum())   # response tokens: positions start..end
                counts.append(len(seq) - start)
    assert torch.allclose(sums, torch.stack(expected), atol=1e-4, rtol=0)
    assert lengths.tolist() == counts


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_shared_prefix_packing_gives_the_padded_logprobs_and_gradients(lora_module, groups, attention):
    lora_module.model.set_attn_implementation(attention)
    pad = lora_module.tokenizer.pad_token_id
    packed = PreferenceCollator(pad, shared_prefix=True)(groups)
    layouts = {"packed": packed, "right": PreferenceCollator(pad)(groups),
               "left": PreferenceCollator(pad, padding_side="left")(groups)}
    # the prompt is computed once per pair: one row holds several groups, fewer tokens than padded
    assert packed["input_ids"].numel() < layouts["right"]["input_ids"].numel()
    results = {}
    for name, batch in layouts.items():
        lora_module.model.zero_grad()
        sums, _ = response_logprobs(lora_module.model, batch)
        loss, _ = lora_module.compute_loss(batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in lora_module.model.named_parameters() if p.grad is not None}
        results[name] = (sums.detach(), loss.detach(), grads)
    lora_module.model.set_attn_implementation("sdpa")
    sums_p, loss_p, grads_p = results["packed"]
    assert sums_p.std() > 1e-3 and len(grads_p) > 0
    for name in ("right", "left"):
        sums, loss, grads = results[name]
        assert torch.allclose(sums_p, sums, atol=1e-5, rtol=0), name
        assert loss_p.item() == pytest.approx(loss.item(), abs=1e-5)
        assert grads.keys() == grads_p.keys()
        for key, grad in grads.items():
            assert torch.allclose(grad, grads_p[key], atol=1e-5, rtol=1e-4), (name, key)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_lora_reference_is_the_adapter_disabled_policy_without_a_copy(lora_module, groups):
    assert lora_module.reference_model is None
    batch = PreferenceCollator(lora_module.tokenizer.pad_token_id)(groups)
    base = make_module(peft=None)   # same seed: the weights the adapter was put on
    with torch.no_grad():
        expected, _ = response_logprobs(base.model, batch)
        policy, _ = response_logprobs(lora_module.model, batch)
    reference = lora_module.reference_forward(batch)
    assert torch.allclose(reference, expected, atol=1e-5)
    assert not torch.allclose(policy, reference, atol=1e-2)   # the perturbed adapter moved the policy


def test_full_fine_tuning_holds_a_frozen_copy_and_reference_free_losses_none():
    full = make_module(peft=None)
    assert full.reference_model is not None and full.reference_model is not full.model
    assert n_params(full) == 2 * n_params(full.model)
    assert not any(p.requires_grad for p in full.reference_model.parameters())
    for kind in ("simpo", "orpo"):
        free = make_module(peft=None, loss={"name": kind})
        assert free.reference_model is None and n_params(free) == n_params(free.model)
    with pytest.raises(ConfigError, match="stage.module.reference"):
        DPOModule(model=TINY, loss={"name": "kto"}, reference="cached")


def test_cached_reference_holds_no_model_and_survives_training(tmp_path):
    import lightning as L

    module = DPOModule(model=TINY, peft=None, reference="cached", optim={"lr": 1e-2, "warmup_ratio": 0.0})
    dm = datamodule(module.tokenizer, write(tmp_path / "p.jsonl", PAIRS), val_fraction=0.34, batch_size=2)
    trainer = L.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, num_sanity_val_steps=0, enable_model_summary=False)
    module.configure_model()
    start = make_module(peft=None)   # the starting weights, i.e. π_ref
    trainer.fit(module, datamodule=dm)
    assert module.reference_model is None and n_params(module) == n_params(module.model)
    cache = module.reference_cache
    assert cache.shape == (dm.num_sequences,) and not torch.isnan(cache).any()
    batch = PreferenceCollator(module.tokenizer.pad_token_id)(list(dm.train_set) + list(dm.val_set))
    with torch.no_grad():
        reference, _ = response_logprobs(start.model.eval(), batch)
        policy, _ = response_logprobs(module.model, batch)
    assert torch.allclose(cache[batch["sequence_uid"]], reference, atol=1e-4)
    assert not torch.allclose(policy, reference, atol=1e-2)   # the policy trained away from the cache


@pytest.mark.parametrize("kind", ["sigmoid", "cdpo", "robust", "ipo", "hinge", "kto"])
def test_loss_at_start_is_the_policy_equals_reference_value(kind, groups):
    module = make_module(loss={"name": kind})
    batch = PreferenceCollator(module.tokenizer.pad_token_id, shared_prefix=True)(groups)
    loss, stats = module.compute_loss(batch)
    # h = 0: sigmoid/cdpo/robust −log σ(0) = log 2; ipo (0 − 5)² = 25; hinge max(0, 1) = 1; kto 1 − σ(0) = 0.5
    expected = {"sigmoid": math.log(2), "cdpo": math.log(2), "robust": math.log(2), "ipo": 25.0, "hinge": 1.0,
                "kto": 0.5}[kind]
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    assert stats["kl/reference"].item() == pytest.approx(0.0, abs=1e-5)
    assert stats["margins"].item() == pytest.approx(0.0, abs=1e-5)


def test_bad_pairs_are_counted_skips_or_errors_and_never_a_nan_loss(tmp_path):
    module = make_module()
    long = "yes " * 60
    records = [*PAIRS[:2],
               {"prompt": "Same?", "chosen": "Identical reply.", "rejected": "Identical reply."},
               {"prompt": "Empty?", "chosen": "A reply.", "rejected": "   "},
               {"prompt": "Cut?", "chosen": long + "A", "rejected": long + "B"}]   # equal after the cut
    path = write(tmp_path / "bad.jsonl", records)
    dm = datamodule(module.tokenizer, path, max_length=32, min_prompt_tokens=8)
    assert len(dm.train_set) == 2
    assert dm.skipped == {IDENTICAL: 2, EMPTY: 1, CUT: 0}
    loss, _ = module.compute_loss(next(iter(dm.train_dataloader())))
    assert torch.isfinite(loss)
    with pytest.raises(DataError, match=r"train pair from \S*bad.jsonl record 3 has identical chosen and rejected"):
        datamodule(module.tokenizer, path, max_length=32, min_prompt_tokens=8, invalid="error")
    # max_length 1 leaves one response token and no prompt: nothing predicts it
    cut = write(tmp_path / "cut.jsonl", PAIRS[:1])
    with pytest.raises(DataError, match="no training group yields a pair"):
        datamodule(module.tokenizer, cut, max_length=1, min_prompt_tokens=0)
    with pytest.raises(DataError, match="no response token left after truncation"):
        datamodule(module.tokenizer, cut, max_length=1, min_prompt_tokens=0, invalid="error")


def test_export_records_base_and_scores_pairs_by_implicit_reward(lora_module, groups, tmp_path, capsys):
    from rlhf.dpo.implicit_reward import is_dpo_export, load_implicit_reward
    from rlhf.score import main

    out = lora_module.export(tmp_path / "model")
    meta = json.loads((tmp_path / "model" / "merged" / "rlhf_metadata.json").read_text())
    assert meta["stage"] == "dpo" and meta["base"] == "tiny" and meta["base_model"]["tiny"]["seed"] == 0
    assert (tmp_path / "model" / "adapter" / "rlhf_metadata.json").is_file() and is_dpo_export(tmp_path / "model")
    scorer = load_implicit_reward(out)
    prompts, chosen = [p["prompt"] for p in PAIRS], [p["chosen"] for p in PAIRS]
    # β·(log π − log π_ref) from the training module's own policy and reference
    batch = PreferenceCollator(lora_module.tokenizer.pad_token_id)(
        [scorer.encode(p, r) for p, r in zip(prompts, chosen)])
    with torch.no_grad():
        policy, _ = response_logprobs(lora_module.model.eval(), batch)
    lora_module.model.train()
    expected = 0.1 * (policy - lora_module.reference_forward(batch))
    rewards = scorer.score(prompts, chosen)
    assert rewards.abs().max() > 1e-3 and torch.allclose(rewards, expected, atol=1e-4)
    write(tmp_path / "pairs.jsonl", PAIRS)
    summary = main(["--model", str(tmp_path / "model"), "--input", str(tmp_path / "pairs.jsonl"),
                    "--output", str(tmp_path / "scored.jsonl")])
    lines = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert summary["n"] == len(PAIRS) == len(lines)
    assert [line["score_chosen"] for line in lines] == pytest.approx(rewards.tolist(), abs=1e-5)
    with pytest.raises(ConfigError, match="--output-type"):
        main(["--model", str(out), "--input", str(tmp_path / "pairs.jsonl"), "--output", str(tmp_path / "x.jsonl"),
              "--output-type", "prob"])
