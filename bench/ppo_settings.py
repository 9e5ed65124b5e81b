"""The PPO benchmark settings, shared by the floor, our PPOModule and TRL's PPOTrainer.

Defaults: SmolLM2-135M fp32, 16 prompts per step, 32 new tokens, 4 PPO epochs over one minibatch
of 16, LoRA r 16 / alpha 32 / dropout 0.05 on all linear layers, temperature 1, stop at EOS. The
prompts are the built-in demo RL split rendered with the chatml template, so all three systems see
token-identical prompts of the same length distribution.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from omegaconf import OmegaConf
from torch import nn

from lightning_run import GPU, compose_train_config

LORA = {"enabled": True, "r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
REWARD_LETTER = "e"


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="smollm2-135m", help="a configs/model group (tiny, smollm2-135m, hub)")
    parser.add_argument("--model-source", default=None, help="model.source override, e.g. a larger hub id or folder")
    parser.add_argument("--batch", type=int, default=16, help="prompts per PPO step (one sample each)")
    parser.add_argument("--new-tokens", type=int, default=32, help="max new tokens per response")
    parser.add_argument("--epochs", type=int, default=4, help="PPO epochs over the rollout")
    parser.add_argument("--minibatch", type=int, default=None, help="PPO minibatch (default: the whole batch)")
    parser.add_argument("--gpu", action="store_true", help="CUDA, bf16, FSDP2 on one GPU for our module")


def settings_argv(args, batch: int | None = None, new_tokens: int | None = None) -> list[str]:
    """The settings as worker options, so every worker runs the orchestrator's settings (batch and
    new_tokens: a scaling point's own, where given)."""
    out = ["--model", args.model, "--batch", str(batch or args.batch),
           "--new-tokens", str(new_tokens or args.new_tokens), "--epochs", str(args.epochs)]
    if args.model_source:
        out += ["--model-source", args.model_source]
    if args.minibatch:
        out += ["--minibatch", str(args.minibatch)]
    if args.gpu:
        out.append("--gpu")
    return out


def model_overrides(args) -> list[str]:
    overrides = [f"model={args.model}"]
    if args.model_source:
        overrides.append(f"model.source={args.model_source}")
    return overrides


def model_spec(args) -> dict:
    """The resolved `model` config group, as our modules receive it."""
    cfg = compose_train_config(model_overrides(args) + (GPU if args.gpu else []), tempfile.gettempdir())
    return OmegaConf.to_container(cfg.model, resolve=True)


def prompt_token_ids(tokenizer, n: int, seed: int = 0) -> list[list[int]]:
    """The first n demo RL prompts as chatml token ids ending in the assistant prefix."""
    from rlhf.data.demo_task import demo_prompts
    from rlhf.data.templates import get_template
    from rlhf.data.prompt_encoding import encode_prompt

    template = get_template("chatml", tokenizer.eos_token)
    return [encode_prompt(tokenizer, template, r["prompt"], None) for r in demo_prompts("rl", n, seed)]


def prompts_needed(batch: int, steps: int) -> int:
    return batch * steps


class LetterCountRewardModel(nn.Module):
    """A closed-form 'reward model' in the shape TRL's PPO expects (`base_model_prefix` body whose
    last hidden state goes through `.score`): the number of times the letter occurs in the text up
    to each position, so the score read at the last token is the letter count of prompt + response.

    Our PPOModule uses rlhf.rewards.word_count.WordCountReward on the decoded response (the same letter); the
    prompt's share is a per-prompt constant. Both cost next to nothing, which keeps the comparison
    about the PPO machinery.
    """

    base_model_prefix = "body"

    def __init__(self, tokenizer, letter: str = REWARD_LETTER):
        super().__init__()
        tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        counts = torch.tensor([float(str(t).lower().count(letter)) for t in tokens])
        self.body = _CumulativeCount(counts)
        self.score = nn.Identity()


class _CumulativeCount(nn.Module):
    def __init__(self, counts: torch.Tensor):
        super().__init__()
        self.register_buffer("counts", counts)

    def forward(self, input_ids, attention_mask, **_):
        per_token = self.counts[input_ids] * attention_mask.to(self.counts.dtype)
        return _HiddenStates(per_token.cumsum(1).unsqueeze(-1))


class _HiddenStates:
    def __init__(self, last: torch.Tensor):
        self.hidden_states = (last,)
