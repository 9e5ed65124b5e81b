import math

import pytest

from rlhf.evaluate.correlation import average_ranks, pearson, response_length, reward_length_correlation, spearman


def test_pearson_hand_example():
    # x = 1..4 (mean 2.5), y = 2,4,5,9 (mean 5): dx = -1.5,-.5,.5,1.5; dy = -3,-1,0,4
    # sxy = 4.5+.5+0+6 = 11; sxx = 5; syy = 26 -> r = 11/sqrt(130) = 0.964764
    assert pearson([1, 2, 3, 4], [2, 4, 5, 9]) == pytest.approx(0.964764, abs=1e-6)
    # y is increasing -> ranks identical -> spearman 1
    assert spearman([1, 2, 3, 4], [2, 4, 5, 9]) == pytest.approx(1.0)


def test_spearman_with_ties_uses_average_ranks():
    assert average_ranks([1, 2, 2, 3]) == [1.0, 2.5, 2.5, 4.0]
    # ranks x 1,2.5,2.5,4 and y 1,3,2,4 (means 2.5): dx -1.5,0,0,1.5; dy -1.5,.5,-.5,1.5
    # sxy = 2.25+2.25 = 4.5; sxx = 4.5; syy = 5 -> 4.5/sqrt(22.5) = 0.948683
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.948683, abs=1e-6)


def test_constant_input_and_lengths():
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        pearson([1], [2])
    assert response_length("two words", "words") == 2 and response_length("two words") == 9
    out = reward_length_correlation([0.1, 0.2, 0.3], [10, 30, 20])
    # ranks rewards 1,2,3 vs lengths 1,3,2: d = -1,0,1 and -1,1,0 -> sxy = 1, sxx = syy = 2 -> 0.5
    assert out["spearman"] == pytest.approx(0.5) and out["n"] == 3


def test_ranks_of_many_ties_by_hand():
    # sorted: 1 1 2 3 3 3 -> ranks 1.5 1.5 3 5 5 5, read back in input order
    assert average_ranks([3, 1, 2, 3, 3, 1]) == [5.0, 1.5, 3.0, 5.0, 5.0, 1.5]
    # x ranks 5,1.5,3,5,5,1.5 vs y = 1..6: Pearson of those ranks
    rx, ry = [5, 1.5, 3, 5, 5, 1.5], [1, 2, 3, 4, 5, 6]
    assert spearman([3, 1, 2, 3, 3, 1], [1, 2, 3, 4, 5, 6]) == pytest.approx(pearson(rx, ry))
