"""What every annotator offers, so the pair builder and label aggregator (docs/methods.md §1.3, A4)
need not know whether ranks came from a simulation, a person, an LLM judge or a reward model."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from rlhf.core.errors import DataError


@runtime_checkable
class Annotator(Protocol):
    name: str

    def rank(self, prompt: list[dict], responses: list[str]) -> list[int]:
        """Rank per response, 0 = best; equal ranks mean a tie."""
        ...

    def labels(self, prompt: list[dict], response: str) -> dict[str, float]:
        """Per-criterion labels in [0, 1]; rankers that cannot label raise NotImplementedError."""
        ...


def check_prompt(prompt: list[dict]) -> None:
    """A prompt is a non-empty message list ending with a user turn (COMMON conversation format)."""
    if not isinstance(prompt, list) or not prompt:
        raise DataError(f"a prompt must be a non-empty list of messages, got {type(prompt).__name__}")
    for i, message in enumerate(prompt):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise DataError(f"prompt message {i} must be a dict with a str 'content', got {message!r}")
        if message.get("role") not in ("system", "user", "assistant"):
            raise DataError(
                f"prompt message {i} has role {message.get('role')!r}; expected system, user or assistant"
            )
    if prompt[-1]["role"] != "user":
        raise DataError(f"a prompt must end with a user turn, it ends with {prompt[-1]['role']!r}")


def last_user_text(prompt: list[dict]) -> str:
    """The question being answered: the final user turn, which is what relevance is judged against."""
    check_prompt(prompt)
    return prompt[-1]["content"]


def prompt_text(prompt: str | list[dict]) -> str:
    """Plain text of a prompt for judges that read text: a string as it is, a single turn's
    content, otherwise a role-labelled transcript ('Role: content' lines)."""
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1:
        return prompt[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)


def render_conversation(prompt: list[dict]) -> str:
    """prompt_text of a checked prompt: a single user turn stays as it is, a longer thread becomes
    'Role: content' lines."""
    check_prompt(prompt)
    return prompt_text(prompt)


def ranks_from_scores(scores: list[float]) -> list[int]:
    """Competition ranks, higher score = better: rank_i = #{j : s_j > s_i}, so equal scores tie.

    Example: scores [0.2, 0.9, 0.2, 0.5] -> ranks [2, 0, 2, 1].
    """
    return [sum(other > s for other in scores) for s in scores]
