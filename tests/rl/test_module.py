"""PPOModule on the tiny model: reference via disabled adapter, KL placement, lr = 0, learning,
checkpoint/resume and the CLI."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from rlhf.data.prompt_datamodule import PromptDataModule
from rlhf.core.models import build_tiny_llama, load_backbone_tokenizer
from rlhf.data.prompt_encoding import left_pad
from rlhf.rl.experience_builder import build_experience
from rlhf.rl.module import PPOModule
from rlhf.rl.rollout import forward_response
from rlhf.rl.rollout_step import roll_out

REPO = Path(__file__).resolve().parents[2]
TINY = {"source": "tiny", "tokenizer": "embedded:smollm2-135m", "dtype": "float32",
        "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128, "seed": 0}}
WORDS = ["apple", "river", "green", "seven", "music", "table", "window", "garden"]
STEP_KEYS = ("train/reward_raw_mean", "train/kl_objective", "train/kl_per_token", "train/value_loss",
             "train/policy_loss", "train/approx_kl", "train/entropy", "train/beta", "train/response_length")


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Write about {w}."}) + "\n"
                            for i, w in enumerate(WORDS)))
    return path


def make_datamodule(prompts_file, batch_size=4, shuffle=True) -> PromptDataModule:
    source = {"path": str(prompts_file), "adapter": "generic", "kind": "prompt", "fields": {"prompt": "prompt"}}
    return PromptDataModule(load_backbone_tokenizer(TINY), sources=[source], batch_size=batch_size, shuffle=shuffle,
                            seed=0)


def make_module(lr=1e-2, peft=None, critic="separate", new_tokens=4, beta=0.05, top_k=0, from_generation=True,
                **update) -> PPOModule:
    return PPOModule(TINY, peft, {"kind": "word_count", "word": "e", "whole_word": False}, critic={"kind": critic},
                     rollout={"max_new_tokens": new_tokens, "top_k": top_k, "logprobs_from_generation": from_generation}, kl={"kind": "adaptive", "init_beta": beta, "target": 1.0,
                                                                 "horizon": 100},
                     update={"epochs": 2, "minibatch_size": 2, **update}, actor_optim={"lr": lr, "schedule": "constant", "grad_clip": 1.0},
                     critic_optim={"lr": lr, "schedule": "constant"}, log_samples_every_n_steps=1, seed=0)


def rollout(module, batch, iteration):
    out = roll_out(module.actor, module.tokenizer, batch, iteration, module.seed, module.cfg.rollout, module.device,
                   fixed_length=False, with_hidden=module.uses_value_head)
    return out.query_ids, out.query_mask, out.generation


def experience(module, query, qmask, generation, scores):
    return build_experience(module.models, query, qmask, generation, scores, module.kl_controller.beta,
                            module.cfg.rollout, module.cfg.kl, module.cfg.update, module.ranks)


class Record(L.Callback):
    def __init__(self):
        self.steps = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})


def fit(module, datamodule, root, max_steps, ckpt_path=None) -> tuple[L.Trainer, Record]:
    L.seed_everything(0)
    record = Record()
    trainer = L.Trainer(accelerator="cpu", max_steps=max_steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(root),
                        callbacks=[record])
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer, record


def test_reference_via_disabled_adapter_equals_separate_frozen_copy():
    module = make_module(peft={"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0})
    module.configure_model()
    assert module.reference is None  # LoRA: the reference is the actor with its adapter off
    with torch.no_grad():
        for name, param in module.actor.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)  # make the adapter matter
    frozen = build_tiny_llama(module.tokenizer, **TINY["tiny"]).eval()
    query, qmask = left_pad([[11, 12, 13, 14, 15], [21, 22]], 0)
    response = torch.tensor([[31, 32, 33], [41, 2, 0]])
    rmask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    with torch.no_grad():
        ref = module.models.reference_logprobs(query, qmask, response, rmask)
        copy_logprobs = forward_response(frozen, query, qmask, response, rmask)[0]
        actor = forward_response(module.actor, query, qmask, response, rmask)[0]
    assert torch.equal(ref, copy_logprobs)
    assert not torch.allclose(actor, copy_logprobs, atol=1e-3)


@pytest.mark.parametrize("from_generation", [False, True])
def test_lr_zero_leaves_policy_unchanged_and_kl_zero(prompts_file, tmp_path, from_generation):
    """Recomputed old log-probs give KL exactly 0; taken from the KV-cache sampling forwards they
    differ from a full forward by float rounding only."""
    module = make_module(lr=0.0, from_generation=from_generation)
    _, record = fit(module, make_datamodule(prompts_file), tmp_path, max_steps=2)
    before = build_tiny_llama(module.tokenizer, **TINY["tiny"])
    for (name, p0), p1 in zip(before.named_parameters(), module.actor.parameters()):
        assert torch.equal(p0, p1), name
    tolerance = 1e-6 if from_generation else 0.0
    for step in record.steps:  # policy = reference at every step: objective KL 0 (docs/methods.md §4.10)
        assert abs(step["train/kl_objective"]) <= tolerance * 4 and abs(step["train/kl_per_token"]) <= tolerance
        assert abs(step["train/approx_kl"]) <= tolerance  # ratio = 1 on every update
    assert (tmp_path / "samples.jsonl").is_file()
    sample = json.loads((tmp_path / "samples.jsonl").read_text().splitlines()[0])
    assert set(sample) == {"step", "prompt", "response", "reward"}


def test_kl_penalty_lands_on_response_tokens_only(prompts_file, tmp_path):
    module = make_module(lr=5e-2, new_tokens=6, beta=0.5)
    datamodule = make_datamodule(prompts_file, shuffle=False)
    fit(module, datamodule, tmp_path, max_steps=1)  # one update: policy != reference now

    def eos_likely(_module, _inputs, output):  # p(EOS) ~ e^10 / (e^10 + 49151) = 0.31 per step: ragged lengths
        output.logits[..., 2] += 10.0
        return output

    handle = module.actor.register_forward_hook(eos_likely)
    try:
        batch = next(iter(datamodule.train_dataloader()))
        query, qmask, generation = rollout(module, batch, iteration=7)
        scores = torch.tensor([10.0, 20.0, 30.0, 40.0])
        exp, _ = experience(module, query, qmask, generation, scores)
    finally:
        handle.remove()
    mask = exp.response_mask.bool()
    lengths = mask.sum(1)
    assert lengths.min() < lengths.max() or bool(generation.ended.any())  # some row ended early
    assert exp.rewards.shape == exp.response_ids.shape  # response tokens only: no prompt column exists
    assert bool((exp.rewards[~mask] == 0).all())  # nothing on padding after EOS
    kl = exp.old_logprobs - exp.ref_logprobs  # k1
    beta = module.kl_controller.beta  # 0.5 moved by step 1's adaptive update (±0.2 · 4 / 100 at most)
    assert 0.5 * 0.992 <= beta <= 0.5 * 1.008
    expected = -beta * kl * mask  # on every valid token
    expected[torch.arange(4), lengths - 1] += scores  # the score on the last valid token only
    assert torch.allclose(exp.rewards, expected, atol=1e-6)
    assert float((kl * mask).abs().sum()) > 0


def test_checkpoint_resume_reproduces_next_step(prompts_file, tmp_path):
    _, straight = fit(make_module(), make_datamodule(prompts_file), tmp_path / "a", max_steps=3)
    trainer, _ = fit(make_module(), make_datamodule(prompts_file), tmp_path / "b", max_steps=2)
    trainer.save_checkpoint(tmp_path / "k2.ckpt")
    _, resumed = fit(make_module(), make_datamodule(prompts_file), tmp_path / "c", max_steps=3,
                     ckpt_path=str(tmp_path / "k2.ckpt"))
    assert len(resumed.steps) == 1
    for key in STEP_KEYS:
        assert resumed.steps[0][key] == pytest.approx(straight.steps[2][key], abs=1e-6), key
    assert straight.steps[2]["train/beta"] != 0.05  # the adaptive controller moved and was restored


def test_entropy_bonus_is_computed_in_the_update_only_when_on(prompts_file, tmp_path):
    """With lr = 0 the policy never moves, so the entropy of every update equals the rollout's (all
    rows run the full 4 tokens, so the mean over minibatches is the token mean); coefficient 0 skips it."""
    _, with_bonus = fit(make_module(lr=0.0, entropy_coef=0.01), make_datamodule(prompts_file), tmp_path / "a", max_steps=1)
    step = with_bonus.steps[0]
    assert step["train/response_length"] == 4.0
    assert step["train/train_entropy"] == pytest.approx(step["train/entropy"], rel=1e-5)
    _, without = fit(make_module(lr=0.0), make_datamodule(prompts_file), tmp_path / "b", max_steps=1)
    assert "train/train_entropy" not in without.steps[0] and without.steps[0]["train/entropy"] > 0


@pytest.mark.parametrize("critic", ["separate", "value_head"])
def test_old_logprobs_from_generation_match_a_recomputing_run(prompts_file, tmp_path, critic):
    """Skipping the old-policy forward changes nothing but float rounding: same samples, same step metrics."""
    runs = {}
    for from_generation in (False, True):
        _, runs[from_generation] = fit(make_module(critic=critic, from_generation=from_generation),
                                       make_datamodule(prompts_file), tmp_path / str(from_generation), max_steps=2)
    for recomputed, reused in zip(runs[False].steps, runs[True].steps):
        for key in STEP_KEYS + ("train/values_mean", "train/explained_variance"):
            assert reused[key] == pytest.approx(recomputed[key], rel=1e-4, abs=1e-5), key


@pytest.mark.parametrize("critic", ["separate", "value_head"])
def test_micro_batches_accumulate_the_minibatch_gradient(prompts_file, tmp_path, critic):
    """One minibatch of 4 ragged rows as one forward vs as 4 length-sorted, trimmed micro-batches
    of 1: token-weighted accumulation must give the same loss, statistics and gradients."""
    module = make_module(critic=critic, new_tokens=6)
    datamodule = make_datamodule(prompts_file, shuffle=False)
    fit(module, datamodule, tmp_path, max_steps=1)  # one update: policy != reference, value head != 0

    query, qmask, generation = rollout(module, next(iter(datamodule.train_dataloader())), iteration=5)
    exp, _ = experience(module, query, qmask, generation, torch.tensor([1.0, -2.0, 0.5, 3.0]))
    # ragged rows, so each micro-batch has padding of its own to trim: prompts of 4 rows shortened
    # from the left (those ids become left padding), responses cut on the right (tokens after the
    # mask are padding the causal forward never sees)
    exp.query_mask[0, :3] = 0
    exp.query_mask[2, :1] = 0
    exp.response_mask[1, 2:] = 0
    exp.response_mask[3, 4:] = 0
    lengths = exp.query_mask.sum(1) + exp.response_mask.sum(1)
    assert len(set(lengths.tolist())) == 4
    results = {}
    for micro in (None, 1):
        module.cfg.update.micro_batch_size = micro
        module.zero_grad(set_to_none=True)
        loss, stats, n_tokens = module.updates._accumulate(module.models, exp, True, module.kl_controller.beta, None)
        grads = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}
        results[micro] = (loss, stats, n_tokens, grads)
    (loss0, stats0, n0, grads0), (loss1, stats1, n1, grads1) = results[None], results[1]
    assert n0 == n1 == exp.response_mask.sum()
    assert float(loss1) == pytest.approx(float(loss0), rel=1e-5, abs=1e-7)
    assert set(stats1) == set(stats0)
    for key in stats0:
        assert float(stats1[key]) == pytest.approx(float(stats0[key]), rel=1e-5, abs=1e-7), key
    assert grads0.keys() == grads1.keys() and len(grads0) > 0
    for name in grads0:
        torch.testing.assert_close(grads1[name], grads0[name], rtol=1e-4, atol=1e-7, msg=name)


@pytest.mark.parametrize("critic", ["separate", "value_head"])
def test_micro_batches_give_the_same_training_steps(prompts_file, tmp_path, critic):
    runs = {}
    for micro in (None, 1):
        module = make_module(critic=critic, new_tokens=6, micro_batch_size=micro)
        _, runs[micro] = fit(module, make_datamodule(prompts_file), tmp_path / str(micro), max_steps=2)
    assert len(runs[1].steps) == 2
    for whole, micro in zip(runs[None].steps, runs[1].steps):
        for key in STEP_KEYS + ("train/value_clipfrac", "train/policy_clipfrac", "train/critic_grad_norm",
                                "train/actor_grad_norm"):
            assert micro[key] == pytest.approx(whole[key], rel=1e-4, abs=1e-6), key


@pytest.mark.slow
def test_ppo_raises_word_count_reward(prompts_file, tmp_path):
    """Reward = count of the letter "e" in 8 tokens. The random tiny policy is near uniform over 49k
    tokens, so each token is sampled too rarely to learn from; top-k 5 sampling gives every visited
    state 5 candidates, which PPO can rank within a few steps (measured: 2.75 -> 15.6 in 5 steps)."""
    module = make_module(lr=1e-2, new_tokens=8, beta=0.01, top_k=5, minibatch_size=None)
    _, record = fit(module, make_datamodule(prompts_file, batch_size=8, shuffle=False), tmp_path, max_steps=6)
    rewards = [s["train/reward_raw_mean"] for s in record.steps]
    assert sum(rewards[-2:]) / 2 > sum(rewards[:2]) / 2 + 3.0, rewards


@pytest.mark.slow
def test_cli_runs_ppo_and_exports(prompts_file, tmp_path):
    cmd = [sys.executable, "-m", "rlhf.train", "stage=ppo", "model=tiny", "peft=lora", "data=prompts_jsonl",
           f"data.sources.0.path={prompts_file}", "data.batch_size=2", "trainer=debug", "trainer.max_steps=2",
           "trainer.gradient_clip_val=null", "logger=csv", "callbacks=none", "stage.module.rollout.max_new_tokens=4",
           "stage.module.update.epochs=1", f"paths.log_dir={tmp_path}", f"hydra.run.dir={tmp_path}/run"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = next((tmp_path / "run" / "csv").rglob("metrics.csv"))
    rows = list(csv.DictReader(metrics.open()))
    assert any(r.get("train/reward_raw_mean") for r in rows)
    assert (tmp_path / "run" / "model" / "merged" / "config.json").is_file()
    assert (tmp_path / "run" / "model" / "adapter" / "adapter_config.json").is_file()  # LoRA actor
    assert (tmp_path / "run" / "model" / "critic" / "config.json").is_file()


@pytest.mark.parametrize("micro_batch_size", [None, 1])
def test_value_head_critic_warmup_then_ptx(prompts_file, tmp_path, micro_batch_size):
    """Step 1 is critic-only (Qwen warm-up): the actor must not move; step 2 trains the actor with
    the PTX term on an SFT batch."""
    sft = tmp_path / "sft.jsonl"
    sft.write_text("".join(json.dumps({"prompt": f"Say {w}.", "response": w}) + "\n" for w in WORDS))
    source = {"path": str(prompts_file), "adapter": "generic", "kind": "prompt", "fields": {"prompt": "prompt"}}
    ptx = {"sources": [{"path": str(sft), "adapter": "generic", "fields": {"prompt": "prompt", "response": "response"}}],
           "batch_size": 2, "max_length": 64}
    datamodule = PromptDataModule(load_backbone_tokenizer(TINY), sources=[source], batch_size=4, shuffle=False, seed=0,
                                  ptx=ptx)
    module = make_module(critic="value_head", critic_warmup_steps=1, ptx_coef=0.5, micro_batch_size=micro_batch_size)
    fresh = dict(build_tiny_llama(module.tokenizer, **TINY["tiny"]).named_parameters())
    unchanged = []

    class ActorCheck(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            names = [n for n, _ in fresh.items()]
            unchanged.append(all(torch.equal(fresh[n], p) for n, p in zip(names, pl_module.actor.parameters())))
            if batch_idx == 0:
                assert float(pl_module.value_head.weight.detach().abs().sum()) > 0  # zero-init head trained

    L.seed_everything(0)
    record = Record()
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                        callbacks=[ActorCheck(), record])
    trainer.fit(module, datamodule=datamodule)
    assert unchanged == [True, False]  # frozen during the warm-up step, trained after
    assert record.steps[0]["train/critic_warmup"] == 1.0 and "train/ptx_loss" not in record.steps[0]
    assert record.steps[1]["train/critic_warmup"] == 0.0 and record.steps[1]["train/ptx_loss"] > 0
    assert module.ptx_stream.served == 4  # one PTX batch per actor update: 2 epochs x 2 minibatches


def test_warmup_longer_than_the_run_warns_that_the_actor_never_trains(prompts_file, tmp_path, caplog):
    module = make_module(critic="value_head", critic_warmup_steps=3, lr=0.0)
    with caplog.at_level("WARNING", logger="rlhf.rl.module"):
        fit(module, make_datamodule(prompts_file), tmp_path, max_steps=2)
    assert "critic_warmup_steps=3 >= trainer.max_steps=2: the actor is never trained" in caplog.text


class PoisonGradients(L.Callback):
    """Every gradient becomes NaN while the loss stays finite (the case NonFiniteGuard cannot see in PPO)."""

    def on_train_start(self, trainer, pl_module):
        for p in pl_module.parameters():
            if p.requires_grad:
                p.register_hook(lambda grad: torch.full_like(grad, float("nan")))


@pytest.mark.parametrize("limit", [5, 3])
def test_nan_gradient_with_finite_loss_skips_every_update(prompts_file, tmp_path, limit):
    from rlhf.core.errors import TrainingFault

    module = make_module(critic="value_head", max_nonfinite_in_a_row=limit)   # 2 epochs x 2 minibatches = 4 updates
    L.seed_everything(0)
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                        callbacks=[PoisonGradients()])
    if limit == 3:
        with pytest.raises(TrainingFault, match=r"step 0: 3 minibatch updates in a row had a NaN/inf loss or gradient"):
            trainer.fit(module, datamodule=make_datamodule(prompts_file))
        return
    trainer.fit(module, datamodule=make_datamodule(prompts_file))
    before = build_tiny_llama(module.tokenizer, **TINY["tiny"])
    for (name, p0), p1 in zip(before.named_parameters(), module.actor.parameters()):
        assert torch.equal(p0, p1), name                                     # no weight moved
    assert module.updates.skipped_updates == 4 and float(trainer.callback_metrics["train/ppo_updates"]) == 0
