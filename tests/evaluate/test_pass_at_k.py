from math import comb

import numpy as np
import pytest

from rlhf.evaluate.pass_at_k import (group_by_prompt, mean_at_k, pass_at_k, pass_at_k_from_flags, pass_at_k_summary,
                                     per_prompt_pass_at_k)


@pytest.mark.parametrize("n, c, k, expected", [
    (4, 1, 2, 0.5),          # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (4, 1, 1, 0.25),         # pass@1 = c/n
    (5, 2, 2, 0.7),          # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (10, 3, 5, 11 / 12),     # 1 - C(7,5)/C(10,5) = 1 - 21/252
    (4, 0, 3, 0.0),          # nothing correct
    (4, 2, 3, 1.0),          # n - c < k: every draw of 3 holds a correct one
    (4, 4, 4, 1.0),
])
def test_pass_at_k_hand_worked(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_product_is_stable_for_large_n():
    # the binomials here have hundreds of digits; the product needs none of them
    n, c, k = 1000, 7, 100
    exact = 1 - comb(n - c, k) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-12)
    assert 0.0 <= pass_at_k(200, 1, 200) <= 1.0


def test_errors():
    with pytest.raises(ValueError, match="k=3 is larger than the number of samples n=2"):
        pass_at_k(2, 1, 3)
    with pytest.raises(ValueError, match="more than n"):
        pass_at_k(2, 3, 1)
    with pytest.raises(ValueError, match="k must be"):
        pass_at_k(4, 1, 0)
    with pytest.raises(ValueError, match="k=5 is larger"):
        mean_at_k([True, False], 5)
    with pytest.raises(ValueError, match="booleans or 0/1"):
        pass_at_k_from_flags([True, 0.5], 1)


def test_flags_and_mean_at_k():
    flags = [False, True, False, False]
    assert pass_at_k_from_flags(flags, 2) == pytest.approx(0.5)
    assert pass_at_k_from_flags([0, 1, 0, 0], 2) == pytest.approx(0.5)
    assert pass_at_k_from_flags(np.array([False, True, False, False]), 2) == pytest.approx(0.5)
    assert mean_at_k(flags) == 0.25
    assert mean_at_k(flags, 2) == 0.5        # the first 2 samples: one of two correct
    assert mean_at_k([True, True, False, False], 4) == 0.5


def test_per_prompt_and_summary():
    flags_by_prompt = [
        [True, False, False, False],   # n=4, c=1: pass@1 .25, pass@2 .5, mean@2 .5
        [True, True, True, True],      # all correct: 1, 1, 1
        [False, False, False, False],  # none: 0, 0, 0
    ]
    assert per_prompt_pass_at_k(flags_by_prompt, 2) == pytest.approx([0.5, 1.0, 0.0])
    summary = pass_at_k_summary(flags_by_prompt, ks=(1, 2))
    assert summary == pytest.approx({"n_prompts": 3, "n_samples": 12,
                                     "pass@1": (0.25 + 1 + 0) / 3, "mean@1": (1 + 1 + 0) / 3,
                                     "pass@2": (0.5 + 1 + 0) / 3, "mean@2": (0.5 + 1 + 0) / 3})
    # prompts may have different n; one with too few samples for k is an error naming it
    uneven = {"gsm8k_0": [True, False], "gsm8k_1": [False, False, True, True]}
    assert per_prompt_pass_at_k(uneven, 2) == pytest.approx([1.0, 1 - 1 / 6])
    with pytest.raises(ValueError, match="prompt 'gsm8k_0': k=3 is larger than the number of samples n=2"):
        pass_at_k_summary(uneven, ks=(1, 3))
    with pytest.raises(ValueError, match="no prompts"):
        pass_at_k_summary([], ks=(1,))


def test_group_by_prompt_from_flat_rollouts():
    ids = ["a", "b", "a", "b", "a", "a"]
    flags = [True, False, False, True, False, False]
    grouped = group_by_prompt(ids, flags)
    assert grouped == {"a": [True, False, False, False], "b": [False, True]}
    assert per_prompt_pass_at_k(grouped, 2) == pytest.approx([0.5, 1.0])
    with pytest.raises(ValueError, match="2 prompt ids but 1 flags"):
        group_by_prompt(["a", "b"], [True])
