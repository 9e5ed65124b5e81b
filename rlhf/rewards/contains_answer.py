"""The shape of a reward a user writes: a plain function, named in config by `_target_` with
`_partial_: true` (configs/reward_fn/custom.yaml), that declares the metadata it reads.

    def my_reward(prompts, responses, metadata):
        return [1.0 if row["answer"] in text else 0.0 for text, row in zip(responses, metadata)]
    my_reward.required_fields = ("answer",)
"""

from __future__ import annotations


def contains_answer(prompts: list[list[dict]], responses: list[str], metadata: list[dict]) -> tuple[list[float], dict]:
    """1.0 when the reference answer (metadata["answer"], as text) occurs anywhere in the response,
    else 0.0: a loose check, for demos and as a template; use MathAnswerReward for real grading."""
    hits = [str(row["answer"]).strip() in (text or "") for text, row in zip(responses, metadata)]
    return [1.0 if hit else 0.0 for hit in hits], {"hit": hits}


contains_answer.required_fields = ("answer",)
