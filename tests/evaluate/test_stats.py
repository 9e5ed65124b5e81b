import pytest

from rlhf.core.errors import ConfigError
from rlhf.evaluate.stats import (average_win_rate, bootstrap_ci, normal_ci, outcome_scores, standard_error,
                                 summarize_judgments, summarize_outcomes, win_rate)

WORKED = ["a"] * 6 + ["tie"] * 2 + ["b"] * 2  # 6 wins, 2 ties, 2 losses for model A


def test_worked_example_ties_half():
    s = summarize_outcomes(WORKED, "half")
    # p = (6 + 2/2) / 10 = 0.7; se = sqrt(0.7*0.3/10) = sqrt(0.021) = 0.144914
    # CI = 0.7 ± 1.96*0.144914 = 0.7 ± 0.284031 -> (0.415969, 0.984031)
    assert (s["n"], s["wins"], s["losses"], s["ties"]) == (10, 6, 2, 2)
    assert s["win_rate"] == pytest.approx(0.7)
    assert s["se"] == pytest.approx(0.144914, abs=1e-6)
    assert s["ci_low"] == pytest.approx(0.415969, abs=1e-6)
    assert s["ci_high"] == pytest.approx(0.984031, abs=1e-6)


def test_worked_example_ties_excluded():
    s = summarize_outcomes(WORKED, "exclude")
    # n = 6 + 2 = 8, p = 6/8 = 0.75; se = sqrt(0.75*0.25/8) = sqrt(0.0234375) = 0.153093
    # CI = 0.75 ± 1.96*0.153093 = 0.75 ± 0.300062
    assert s["n"] == 8 and s["n_judgments"] == 10
    assert s["win_rate"] == pytest.approx(0.75)
    assert s["se"] == pytest.approx(0.153093, abs=1e-6)
    assert s["ci_low"] == pytest.approx(0.449938, abs=1e-6)
    assert s["ci_high"] == pytest.approx(1.050062, abs=1e-6)


def test_ddof_one_reproduces_thesis_table_23():
    # p = 0.66, n = 100: sqrt(0.66*0.34/99) = sqrt(0.0022667) = 0.047610 (table: 4.76 %);
    # eq. 7.1 (ddof 0): sqrt(0.2244/100) = 0.047371 (4.74 %)
    assert standard_error(0.66, 100, ddof=1) == pytest.approx(0.047610, abs=1e-6)
    assert standard_error(0.66, 100) == pytest.approx(0.047371, abs=1e-6)
    # text: sft vs pref 71 ± 8.93: 1.96*sqrt(0.71*0.29/100) = 1.96*0.045376 = 0.088937
    low, high = normal_ci(0.71, standard_error(0.71, 100))
    assert (high - low) / 2 == pytest.approx(0.0889, abs=1e-4)


def test_win_rate_edge_cases_and_bad_policy():
    assert win_rate(0, 0, 3, "exclude") is None  # only ties: nothing enters the rate
    assert win_rate(0, 0, 3, "half") == 0.5  # 1.5 / 3
    assert summarize_outcomes([])["win_rate"] is None
    with pytest.raises(ConfigError, match="tie_policy"):
        win_rate(1, 1, 1, "drop")


def test_outcome_scores():
    assert outcome_scores(["a", "tie", "b"], "half") == [1.0, 0.5, 0.0]
    assert outcome_scores(["a", "tie", "b"], "exclude") == [1.0, 0.0]


def test_bootstrap_two_point_case_and_seeding():
    # scores [0, 1]: a resample mean is 0 (p=1/4), 0.5 (p=1/2) or 1 (p=1/4), so the 2.5 % and
    # 97.5 % quantiles of many resampled means are 0 and 1.
    assert bootstrap_ci([0.0, 1.0], n_resamples=4000, seed=1) == (0.0, 1.0)
    # constant scores: every resample mean is 1
    assert bootstrap_ci([1.0] * 5, n_resamples=100) == (1.0, 1.0)
    scores = outcome_scores(WORKED)
    assert bootstrap_ci(scores, 500, seed=3) == bootstrap_ci(scores, 500, seed=3)
    low, high = bootstrap_ci(scores, 2000, seed=3)
    assert low < 0.7 < high


def test_summarize_judgments_pools_reversed_pairs_per_dataset():
    rows = [
        {"model_a": "x", "model_b": "y", "dataset": "koala", "winner": "a"},
        {"model_a": "x", "model_b": "y", "dataset": "koala", "winner": "tie"},
        {"model_a": "y", "model_b": "x", "dataset": "vicuna", "winner": "a"},  # y won -> x lost
        {"model_a": "y", "model_b": "x", "dataset": "vicuna", "winner": "b"},  # x won
    ]
    summary = summarize_judgments(rows)
    (pair,) = summary["pairs"]
    assert (pair["model_a"], pair["model_b"]) == ("x", "y")
    # overall from x's side: wins 2, ties 1, losses 1 -> p = (2 + 0.5)/4 = 0.625
    assert pair["overall"]["win_rate"] == pytest.approx(0.625)
    # koala: 1 win 1 tie -> 0.75; vicuna: 1 win 1 loss -> 0.5
    assert pair["per_dataset"]["koala"]["win_rate"] == pytest.approx(0.75)
    assert pair["per_dataset"]["vicuna"]["win_rate"] == pytest.approx(0.5)
    assert summary["win_rate_matrix"]["y"]["x"] == pytest.approx(0.375)


def test_average_win_rate_thesis_table_10_row():
    # crs_0625 row of Table 10: 64, 62, 50, 58 -> (64+62+50+58)/4 = 58.5
    matrix = {"0.625": {"0.25": 0.64, "0.375": 0.62, "0.5": 0.50, "0.75": 0.58}}
    assert average_win_rate(matrix)["0.625"] == pytest.approx(0.585)


def test_bootstrap_drawn_in_blocks_equals_one_draw(monkeypatch):
    from rlhf.evaluate import stats

    scores = outcome_scores(["a", "b", "tie", "a", "a", "b", "a"])
    whole = bootstrap_ci(scores, 333, seed=5)
    monkeypatch.setattr(stats, "BOOTSTRAP_BLOCK", 20)   # 2 resamples of 7 per block
    assert bootstrap_ci(scores, 333, seed=5) == whole


def test_summaries_read_judgments_once_from_a_stream():
    rows = [{"model_a": "x", "model_b": "y", "winner": w, "dataset": d}
            for w, d in (("a", "k"), ("tie", "k"), ("b", "v"), ("a", "v"))]
    assert summarize_judgments(iter(rows)) == summarize_judgments(rows)
    assert summarize_judgments(iter(rows))["pairs"][0]["overall"]["win_rate"] == pytest.approx(2.5 / 4)
