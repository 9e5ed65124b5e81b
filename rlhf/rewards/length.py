"""A length penalty: 0 up to a target length, then linear in the excess.

    score = -coef * max(0, length - target)            (capped at -max_penalty when given)

Length is counted in characters by default (`target_chars`), or in tokens (`target_tokens`, which
needs the tokenizer to count with). A callable of the reward interface:
reward(prompts, responses, metadata) -> (scores, details); the metadata is not read.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rlhf.core.errors import ConfigError


class LengthPenalty:
    """-coef per character (or token) beyond the target; 0 at or under it; never positive.

    target_chars: the free length in characters (len(response), Python str length).
    target_tokens: the free length in tokens instead; then `tokenizer` is required: a Hugging Face
      tokenizer (counted as len(tokenizer.encode(text, add_special_tokens=False)), so special
      tokens such as BOS are not counted), another object with .encode(text), or any callable
      text -> sequence of tokens.
    Exactly one of target_chars and target_tokens is given.
    coef: penalty per unit of excess (>= 0). max_penalty: optional cap on the penalty's size.

    details: {"length": [int], "excess": [int]}.
    """

    def __init__(self, target_chars: int | None = None, target_tokens: int | None = None, coef: float = 0.001,
                 tokenizer=None, max_penalty: float | None = None):
        if (target_chars is None) == (target_tokens is None):
            raise ConfigError("reward.target_chars", "give exactly one of target_chars and target_tokens")
        target = target_chars if target_chars is not None else target_tokens
        key = "reward.target_chars" if target_chars is not None else "reward.target_tokens"
        if isinstance(target, bool) or not isinstance(target, int) or target < 0:
            raise ConfigError(key, f"must be an integer >= 0, got {target!r}")
        if target_tokens is not None and tokenizer is None:
            raise ConfigError("reward.tokenizer", "target_tokens needs a tokenizer to count tokens with")
        if not (isinstance(coef, (int, float)) and math.isfinite(coef) and coef >= 0):
            raise ConfigError("reward.coef", f"must be a finite number >= 0, got {coef!r}")
        if max_penalty is not None and not (isinstance(max_penalty, (int, float)) and max_penalty >= 0):
            raise ConfigError("reward.max_penalty", f"must be a number >= 0 or None, got {max_penalty!r}")
        self.unit = "chars" if target_chars is not None else "tokens"
        self.target = int(target)
        self.coef = float(coef)
        self.max_penalty = None if max_penalty is None else float(max_penalty)
        self._count = len if self.unit == "chars" else _token_counter(tokenizer)

    def __call__(self, prompts: list[list[dict]], responses: list[str],
                 metadata: list[dict] | None = None) -> tuple[list[float], dict[str, list]]:
        lengths = [int(self._count(r or "")) for r in responses]
        excess = [max(0, n - self.target) for n in lengths]
        scores = []
        for over in excess:
            penalty = self.coef * over
            if self.max_penalty is not None:
                penalty = min(penalty, self.max_penalty)
            scores.append(-penalty if penalty else 0.0)
        return scores, {"length": lengths, "excess": excess}


def _token_counter(tokenizer) -> Callable[[str], int]:
    if hasattr(tokenizer, "encode"):
        def count(text: str) -> int:
            try:
                return len(tokenizer.encode(text, add_special_tokens=False))
            except TypeError:  # an encoder without that keyword (e.g. tiktoken)
                return len(tokenizer.encode(text))
        return count
    if callable(tokenizer):
        return lambda text: len(tokenizer(text))
    raise ConfigError("reward.tokenizer", f"expected a tokenizer with .encode or a callable, got {type(tokenizer).__name__}")
