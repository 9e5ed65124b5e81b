"""The error a health callback raises to end a run whose numbers can no longer be trusted."""

from __future__ import annotations

from rlhf.errors import RLHFError


class TrainingFault(RLHFError, RuntimeError):
    """Training stopped on purpose: the message names the step, the value seen and the likely causes."""
