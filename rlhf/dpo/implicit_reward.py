"""Scoring responses with a DPO export's implicit reward (docs/algorithms.md §3.1).

A DPO policy is a reward model in disguise: r(x, y) = β·(log π(y|x) − log π_ref(y|x)) up to a
prompt-only term (Rafailov et al. 2023 eq. 5), which cancels when two responses to one prompt are
compared. The export records its base model (π_ref), loss and β in rlhf_metadata.json
(DPOModule.export_metadata), so the scorer rebuilds both policies from the folder alone. Losses
without a reference score by their own reward: SimPO's (β/|y|)·log π (Meng et al. 2024 eq. 4),
ORPO's log odds of the mean token log-prob (Hong et al. 2024 eq. 7).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from lightning.pytorch.utilities import move_data_to_device

from rlhf.core.errors import ConfigError
from rlhf.core.models import load_backbone, load_causal_lm, load_tokenizer
from rlhf.data.preference_datamodule import PreferenceCollator
from rlhf.data.templates import get_template, tokenize_prompt_response
from rlhf.dpo.config import REFERENCE_FREE
from rlhf.dpo.logprobs import response_logprobs
from rlhf.dpo.losses import log_odds

METADATA = "rlhf_metadata.json"


def export_folder(path: str | Path) -> Path:
    """The merged HF folder of an export: `path` itself, or `path/merged`."""
    path = Path(path)
    return path / "merged" if (path / "merged" / METADATA).is_file() else path


def is_dpo_export(path: str | Path) -> bool:
    meta = export_folder(path) / METADATA
    return meta.is_file() and json.loads(meta.read_text()).get("stage") == "dpo"


class ImplicitRewardScorer:
    """`score(prompts, responses) -> [N]`, the interface of rlhf.reward_model.scoring.RewardScorer."""

    def __init__(self, policy, reference, tokenizer, metadata: dict, device: str = "cpu", batch_size: int = 16):
        self.policy, self.reference, self.tokenizer = policy.to(device).eval(), reference, tokenizer
        if reference is not None:
            self.reference = reference.to(device).eval()
        self.loss = metadata["loss"]
        self.kind = self.loss["name"]
        self.template = get_template(metadata.get("template", "chatml"), tokenizer.eos_token)
        self.max_length = int(metadata.get("max_length", 2048))
        self.min_prompt_tokens = min(int(metadata.get("min_prompt_tokens", 256)), self.max_length - 1)
        self.device, self.batch_size = device, batch_size

    def encode(self, prompt, response: str) -> dict:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        encoded = tokenize_prompt_response(self.tokenizer, messages, response, self.template, self.max_length,
                                           self.min_prompt_tokens)
        return {"input_ids": [encoded["input_ids"]], "prompt_lengths": [encoded["prompt_length"]], "pairs": [],
                "margins": [], "uids": [0]}

    def reward(self, logps: torch.Tensor, ref_logps: torch.Tensor | None, lengths: torch.Tensor) -> torch.Tensor:
        if self.kind == "simpo":
            return self.loss["beta"] * logps / lengths
        if self.kind == "orpo":
            return log_odds(logps / lengths)
        return self.loss["beta"] * (logps - ref_logps)

    @torch.no_grad()
    def score(self, prompts: list, responses: list[str]) -> torch.Tensor:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        collate = PreferenceCollator(self.tokenizer.pad_token_id)
        out = []
        for start in range(0, len(prompts), self.batch_size):
            groups = [self.encode(p, r) for p, r in zip(prompts[start:start + self.batch_size],
                                                        responses[start:start + self.batch_size])]
            batch = move_data_to_device(collate(groups), self.device)
            logps, lengths = response_logprobs(self.policy, batch)
            ref = response_logprobs(self.reference, batch)[0] if self.reference is not None else None
            out.append(self.reward(logps, ref, lengths.to(logps.dtype)).cpu())
        return torch.cat(out) if out else torch.zeros(0)


def load_implicit_reward(path: str | Path, device: str = "cpu", batch_size: int = 16) -> ImplicitRewardScorer:
    """The scorer of a DPO export: the trained policy from its folder, π_ref from the recorded base."""
    folder = export_folder(path)
    if not is_dpo_export(folder):
        raise ConfigError("model", f"{path} is not a DPO export (no {METADATA} with stage 'dpo')")
    metadata = json.loads((folder / METADATA).read_text())
    tokenizer = load_tokenizer(folder)
    policy = load_causal_lm(folder, tokenizer=tokenizer)
    reference = None if metadata["loss"]["name"] in REFERENCE_FREE else load_backbone(metadata["base_model"], tokenizer)
    return ImplicitRewardScorer(policy, reference, tokenizer, metadata, device, batch_size)
