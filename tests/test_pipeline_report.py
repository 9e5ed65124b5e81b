"""Over-optimisation trend of the pipeline report on hand-worked numbers."""

from __future__ import annotations

import pytest

from rlhf.pipeline_report import least_squares_slope, overoptimisation_trend


def test_slope_of_a_worked_example():
    # x = 0, 1, 2, 3; y = 1, 3, 2, 5: mean x 1.5, mean y 2.75; Sxy = 5.5, Sxx = 5 -> slope 1.1
    assert least_squares_slope([0, 1, 2, 3], [1, 3, 2, 5]) == pytest.approx(1.1)
    assert least_squares_slope([1, 1], [0, 2]) is None and least_squares_slope([1], [1]) is None


def test_trend_flags_proxy_up_gold_down_and_skips_steps_without_kl():
    points = [{"sqrt_kl": 0.0, "proxy": 0.0, "gold": 0.8}, {"sqrt_kl": 1.0, "proxy": 0.5, "gold": 0.7},
              {"sqrt_kl": 2.0, "proxy": 1.0, "gold": 0.6}, {"sqrt_kl": None, "proxy": 9.0, "gold": 0.0}]
    trend = overoptimisation_trend(points)
    assert trend["proxy_slope"] == pytest.approx(0.5) and trend["gold_slope"] == pytest.approx(-0.1)
    assert trend["diverging"] and trend["max_sqrt_kl"] == 2.0
    both_up = [{**p, "gold": p["proxy"]} for p in points[:3]]
    assert not overoptimisation_trend(both_up)["diverging"]
    assert overoptimisation_trend(points[:1]) is None
