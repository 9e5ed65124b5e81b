"""A reward known in closed form, for tests and demos."""

from __future__ import annotations

import re

import torch

from rlhf.core.errors import ConfigError


class WordCountReward:
    """Occurrences of `word` in the response: a reward known in closed form, for tests and demos.

    whole_word=False counts substrings, e.g. one letter, which a near-uniform random policy
    already produces often enough to get a learning signal.
    """

    def __init__(self, word: str, whole_word: bool = True, case_sensitive: bool = False):
        if not word:
            raise ConfigError("reward_fn.word", "must be a non-empty string")
        pattern = rf"\b{re.escape(word)}\b" if whole_word else re.escape(word)
        self.pattern = re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)

    def score(self, prompts: list[list[dict]], responses: list[str]) -> torch.Tensor:
        return torch.tensor([float(len(self.pattern.findall(r))) for r in responses], dtype=torch.float32)
