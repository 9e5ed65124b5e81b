"""GSM8K exact-match accuracy on the final number (ICE-GRT Table 1 reports GSM8K, docs/methods.md §5.1).

A model's answer counts as correct when the number it ends on equals the gold number after
`####`. Which number is "the final one" is decided in this order:
  1. the first number after the last `####` (the format GSM8K's own solutions use);
  2. the first number after the last "answer is" (the usual chain-of-thought closing);
  3. the last number in the text.
Thousands commas are dropped, units and currency signs are ignored ($5, 5kg), a minus sign counts
only when it is not a subtraction (`10-3` is 10 and 3), and numbers compare by value (18.00 == 18).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from rlhf.rewards.verifiable import anchored_number, canonical_number, gsm8k_reference

normalize_number = canonical_number
"""Canonical decimal string: no commas, no trailing zeros ('1,234.50' -> '1234.5')."""
extract_final_number = anchored_number
"""The final number of a response, by the rule above."""
gold_answer = gsm8k_reference
"""The gold number of a GSM8K `answer` field (the text after its `####`)."""


def is_correct(response: str, reference: str) -> bool:
    predicted = extract_final_number(response)
    gold = normalize_number(str(reference))
    return predicted is not None and gold is not None and Decimal(predicted) == Decimal(gold)


def gsm8k_accuracy(rows: Iterable[dict]) -> dict:
    """accuracy = correct / n over rows with `response` and `reference`; `unparsed` counts
    responses that contain no number at all (each one is also counted wrong)."""
    n = correct = unparsed = 0
    for row in rows:
        n += 1
        if extract_final_number(row["response"]) is None:
            unparsed += 1
        elif is_correct(row["response"], row["reference"]):
            correct += 1
    return {"n": n, "correct": correct, "unparsed": unparsed, "accuracy": correct / n if n else None}
