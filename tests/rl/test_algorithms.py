"""The critic-free algorithms inside the RL module (docs/algorithms.md §1): no critic is built when
none is needed, every algorithm trains end to end on the tiny model, checkpoints resume, and
the estimators get the rollout's rewards (KL included) as written out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from rlhf.core.errors import ConfigError
from rlhf.core.models import load_backbone_tokenizer
from rlhf.data.prompt_datamodule import PromptDataModule
from rlhf.rl.config import AlgorithmConfig
from rlhf.rl.critic_free import critic_free_advantages
from rlhf.rl.module import PPOModule

TINY = {"source": "tiny", "tokenizer": "embedded:smollm2-135m", "dtype": "float32",
        "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128, "seed": 0}}
WORDS = ["apple", "river", "green", "seven", "music", "table", "window", "garden"]
ALGORITHM_FILES = Path(__file__).resolve().parents[2] / "configs" / "algorithm"


class OneRank:
    world_size = 1

    @staticmethod
    def gather_rows(x):
        return x

    @staticmethod
    def local_rows(gathered, like):
        return gathered


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Write about {w}."}) + "\n"
                            for i, w in enumerate(WORDS)))
    return path


def datamodule(prompts_file, batch_size=2) -> PromptDataModule:
    source = {"path": str(prompts_file), "adapter": "generic", "kind": "prompt", "fields": {"prompt": "prompt"}}
    return PromptDataModule(load_backbone_tokenizer(TINY), sources=[source], batch_size=batch_size, seed=0)


def algorithm_sections(name: str) -> dict:
    """The sections configs/algorithm/<name>.yaml sets, as the module receives them."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(ALGORITHM_FILES / f"{name}.yaml"))


def module_for(name: str, lr=1e-2, **changes) -> PPOModule:
    sections = algorithm_sections(name)
    for section, values in changes.items():
        sections.setdefault(section, {}).update(values)
    rollout = {"max_new_tokens": 4, **sections.pop("rollout", {})}
    update = {"minibatch_size": None, **sections.pop("update", {})}
    return PPOModule(TINY, None, {"kind": "word_count", "word": "e", "whole_word": False}, rollout=rollout,
                     update=update, actor_optim={"lr": lr, "schedule": "constant", "grad_clip": 1.0},
                     critic_optim={"lr": lr, "schedule": "constant"}, log_samples_every_n_steps=0, seed=0,
                     **sections)


class Record(L.Callback):
    def __init__(self):
        self.steps = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})


def fit(module, data, root, max_steps, ckpt_path=None):
    L.seed_everything(0)
    record = Record()
    trainer = L.Trainer(accelerator="cpu", max_steps=max_steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(root),
                        callbacks=[record])
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return trainer, record


# ------------------------------------------------------------------ no critic when none is needed


def test_critic_none_builds_no_value_model_head_or_optimizer(prompts_file, tmp_path):
    free, ppo = module_for("grpo", lr=0.0), module_for("ppo", lr=0.0, critic={"kind": "separate"})
    trainer, _ = fit(free, datamodule(prompts_file), tmp_path / "free", max_steps=1)
    fit(ppo, datamodule(prompts_file), tmp_path / "ppo", max_steps=1)
    assert free.critic is None and free.value_head is None
    def count(part):
        return sum(p.numel() for p in part.parameters())

    assert count(free) == count(free.actor) + count(free.reference)  # full fine-tuning: a frozen reference copy
    assert count(ppo) == count(ppo.actor) + count(ppo.reference) + count(ppo.critic)
    assert count(ppo.critic) > 0
    assert len(trainer.optimizers) == 1 and len(trainer.lr_scheduler_configs) == 1
    optimized = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert optimized == {id(p) for p in free.actor.parameters()}


def test_critic_none_checkpoint_resumes_the_next_step(prompts_file, tmp_path):
    _, straight = fit(module_for("grpo"), datamodule(prompts_file), tmp_path / "a", max_steps=3)
    trainer, _ = fit(module_for("grpo"), datamodule(prompts_file), tmp_path / "b", max_steps=2)
    trainer.save_checkpoint(tmp_path / "k2.ckpt")
    _, resumed = fit(module_for("grpo"), datamodule(prompts_file), tmp_path / "c", max_steps=3,
                     ckpt_path=str(tmp_path / "k2.ckpt"))
    assert len(resumed.steps) == 1
    for key in ("train/reward_raw_mean", "train/policy_loss", "train/kl_per_token", "train/advantage_std"):
        assert resumed.steps[0][key] == pytest.approx(straight.steps[2][key], abs=1e-6), key


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "dapo", "gspo", "rloo", "reinforce_pp",
                                  "reinforce_pp_baseline", "remax"])
def test_every_algorithm_trains_end_to_end(prompts_file, tmp_path, name):
    module = module_for(name)
    _, record = fit(module, datamodule(prompts_file), tmp_path, max_steps=2)
    last = record.steps[-1]
    assert "train/value_loss" not in last and "train/explained_variance" not in last
    assert last["train/ppo_updates"] >= 1
    assert all(torch.isfinite(torch.tensor(v)) for v in last.values())
    if name == "dapo":
        assert "train/dynamic_sampling/refills" in last


@pytest.mark.parametrize("micro_batch_size", [None, 3])
def test_shared_prompt_forward_trains_as_the_one_row_per_sample_forward(prompts_file, tmp_path, micro_batch_size):
    """Two GRPO steps (4 samples of 2 prompts, a micro-batch of 3 cuts a group) with each prompt
    computed once give the metrics of one row per sample: the second step's rollout comes from
    the weights the first update wrote, so the updates agree too."""
    runs = {}
    for shared in (True, False):
        update = {"shared_prompt": shared, "micro_batch_size": micro_batch_size}
        module = module_for("grpo", update={**algorithm_sections("grpo").get("update", {}), **update})
        _, runs[shared] = fit(module, datamodule(prompts_file), tmp_path / str(shared), max_steps=2)
        assert module.models.shared_prompt is shared
    for packed, plain in zip(runs[True].steps, runs[False].steps):
        for key in ("train/reward_raw_mean", "train/policy_loss", "train/kl_per_token", "train/approx_kl",
                    "train/actor_grad_norm"):
            assert packed[key] == pytest.approx(plain[key], rel=1e-4, abs=1e-6), key


def test_gspo_at_lr_zero_has_sequence_ratio_one_and_no_kl(prompts_file, tmp_path):
    _, record = fit(module_for("gspo", lr=0.0), datamodule(prompts_file), tmp_path, max_steps=2)
    assert record.steps[-1]["train/seq_ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    assert record.steps[-1]["train/kl_per_token"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("change, key", [
    ({"rollout": {"n_samples_per_prompt": 1}}, "stage.module.rollout.n_samples_per_prompt"),
    ({"critic": {"kind": "separate"}}, "stage.module.critic.kind"),
    ({"update": {"minibatch_size": 6}}, "stage.module.update.minibatch_size"),
    ({"algorithm": {"clip_high": 0.1}}, "stage.module.algorithm.clip_high"),
])
def test_direct_construction_checks_the_rules_too(change, key):
    with pytest.raises(ConfigError) as error:
        module_for("grpo", **change)
    assert key in str(error.value)


# ------------------------------------------------------------------ the estimators get the step's rewards


def test_sequence_estimators_read_score_minus_beta_times_summed_kl():
    """Two prompts x two samples, lengths 3/1/2/2; KL in the reward with β = 0.5: the estimators
    see r_i − 0.5 Σ_t KL_{i,t}."""
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 0]])
    scores = torch.tensor([1.0, 0.0, 2.0, 2.0])
    kl = torch.tensor([[0.2, 0.2, 0.2], [0.4, 0, 0], [0.0, 0.0, 0], [1.0, 1.0, 0]])
    rewards = -0.5 * kl
    rewards[torch.arange(4), mask.sum(1) - 1] += scores
    # sequence rewards: 1 − 0.3 = 0.7, 0 − 0.2 = −0.2, 2 − 0 = 2, 2 − 1 = 1
    rloo = critic_free_advantages(AlgorithmConfig(advantage="rloo"), scores, rewards, kl, 0.5, mask, 2, 1.0, OneRank)
    # groups of two: A = r_i − r_other
    expected = torch.tensor([[0.9, 0.9, 0.9], [-0.9, 0, 0], [1.0, 1.0, 0], [-1.0, -1.0, 0]])
    assert torch.allclose(rloo, expected, atol=1e-6)
    dr = critic_free_advantages(AlgorithmConfig(advantage="grpo", scale_std=False), scores, rewards, kl, 0.5, mask,
                                2, 1.0, OneRank)
    assert torch.allclose(dr, expected / 2, atol=1e-6)  # r_i − group mean
    remax = critic_free_advantages(AlgorithmConfig(advantage="remax"), scores, rewards, kl, 0.5, mask, 2, 1.0,
                                   OneRank, greedy_scores=torch.tensor([0.5, 0.5, 1.5, 1.5]))
    assert torch.allclose(remax, torch.tensor([[0.2, 0.2, 0.2], [-0.7, 0, 0], [0.5, 0.5, 0], [-0.5, -0.5, 0]]),
                          atol=1e-6)


def test_reinforce_pp_whitens_the_kl_penalised_returns_by_hand():
    """One row of three tokens, one of one: returns 1 − 0.5·(0.2+0.2+0.2) … then whitened over the four
    valid tokens."""
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    kl = torch.tensor([[0.2, 0.2, 0.2], [0.4, 0.0, 0.0]])
    scores = torch.tensor([1.0, 0.0])
    rewards = -0.5 * kl
    rewards[torch.arange(2), mask.sum(1) - 1] += scores
    out = critic_free_advantages(AlgorithmConfig(advantage="reinforce_pp"), scores, rewards, kl, 0.5, mask, 1, 1.0,
                                 OneRank)
    returns = torch.tensor([0.7, 0.8, 0.9, -0.2])  # Σ_{s≥t} r_s
    mean, std = returns.mean(), returns.std(unbiased=False)
    expected = torch.tensor([[*((returns[:3] - mean) / (std + 1e-8))], [float((returns[3] - mean) / (std + 1e-8)), 0, 0]])
    assert torch.allclose(out, expected, atol=1e-5)
