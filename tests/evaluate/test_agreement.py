import pytest

from rlhf.core.errors import ConfigError, DataError
from rlhf.evaluate.agreement import agreement_rate, judgment_agreement, ranking_pair_agreement


def test_agreement_rate_reference_ties():
    predicted = ["a", "b", "a", "tie", "b"]
    reference = ["a", "a", "a", "tie", "tie"]
    # exclude: reference ties (items 4, 5) drop -> agree on items 1 and 3 of 3 -> 2/3
    assert agreement_rate(predicted, reference) == {"n": 3, "agree": 2, "rate": pytest.approx(2 / 3)}
    # count: item 4 (tie = tie) agrees, item 5 (b vs tie) does not -> 3/5
    assert agreement_rate(predicted, reference, "count") == {"n": 5, "agree": 3, "rate": pytest.approx(0.6)}
    with pytest.raises(ConfigError):
        agreement_rate(predicted, reference, "half")


def test_judgment_agreement_joins_and_flips():
    rm = [
        {"id": "1", "dataset": "koala", "model_a": "x", "model_b": "y", "winner": "a"},
        {"id": "2", "dataset": "koala", "model_a": "y", "model_b": "x", "winner": "a"},  # = x loses
        {"id": "3", "dataset": "vicuna", "model_a": "x", "model_b": "y", "winner": "b"},
        {"id": "9", "dataset": "vicuna", "model_a": "x", "model_b": "y", "winner": "b"},  # no reference: skipped
    ]
    judge = [
        {"id": "1", "dataset": "koala", "model_a": "x", "model_b": "y", "winner": "a"},  # agree
        {"id": "2", "dataset": "koala", "model_a": "x", "model_b": "y", "winner": "a"},  # rm says b -> disagree
        {"id": "3", "dataset": "vicuna", "model_a": "x", "model_b": "y", "winner": "b"},  # agree
    ]
    out = judgment_agreement(rm, judge)
    assert out["overall"]["n"] == 3 and out["overall"]["agree"] == 2
    assert out["per_dataset"]["koala"]["rate"] == pytest.approx(0.5)
    assert out["per_dataset"]["vicuna"]["rate"] == pytest.approx(1.0)


def test_ranking_pair_agreement_with_human_ranks():
    # human ranks r1 < r2 = r3 (r2, r3 tied); pairs with different ranks: (r1,r2), (r1,r3)
    # RM scores: r1 0.9 > r2 0.5 agree; r1 0.9 < r3 1.2 disagree -> 1/2
    out = ranking_pair_agreement({"r1": 0.9, "r2": 0.5, "r3": 1.2}, {"r1": 1, "r2": 2, "r3": 2})
    assert (out["n"], out["agree"]) == (2, 1)


def test_reference_in_both_orders_and_predicted_rows_each_counted():
    def row(rid, a, b, winner, dataset="koala"):
        return {"id": rid, "dataset": dataset, "model_a": a, "model_b": b, "winner": winner}

    reference = [row("1", "x", "y", "a"),
                 row("2", "y", "x", "a"), row("2", "x", "y", "b"),      # both orders: the same-order row is used
                 row("3", "x", "y", "tie", "vicuna")]
    predicted = [row("1", "x", "y", "a"),                               # agrees with a
                 row("2", "x", "y", "b"),                               # reference (x, y) b -> agrees
                 row("2", "y", "x", "b"),                               # reference (y, x) a -> disagrees
                 row("3", "y", "x", "b", "vicuna"),                     # flipped to a; reference tie
                 row("4", "x", "y", "a")]                               # no reference
    out = judgment_agreement(iter(predicted), iter(reference))
    assert out["per_dataset"]["koala"] == {"n": 3, "agree": 2, "rate": pytest.approx(2 / 3)}
    assert out["per_dataset"]["vicuna"] == {"n": 0, "agree": 0, "rate": None}   # the tie is left out
    assert out["overall"] == {"n": 3, "agree": 2, "rate": pytest.approx(2 / 3)}
    counted = judgment_agreement(predicted, reference, "count")
    assert counted["per_dataset"]["vicuna"] == {"n": 1, "agree": 0, "rate": 0.0}   # a (flipped b) vs tie
    with pytest.raises(DataError, match="1 comparisons .* are judged more than once across the reference"):
        judgment_agreement(predicted, reference + [row("1", "x", "y", "b")])
