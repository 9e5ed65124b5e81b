import math

import pytest

from rlhf.data.absolute_labels import WEIGHT_PRESETS, aggregate_labels, likert_to_unit, quality_bucket
from rlhf.core.errors import ConfigError, DataError

LABELS = {"violence": 0.0, "creativity": 0.5, "helpfulness": 1.0, "humor": 0.25, "toxicity": 0.0, "quality": 0.75}


def test_presets_are_the_thesis_vectors():
    assert WEIGHT_PRESETS["w2"] == {
        "violence": -0.05, "creativity": 0.15, "helpfulness": 0.25, "humor": 0.05, "toxicity": -0.10, "quality": 0.40
    }
    assert WEIGHT_PRESETS["w3"] == {
        "violence": 0.0, "creativity": 0.15, "helpfulness": 0.35, "humor": 0.0, "toxicity": -0.10, "quality": 0.40
    }
    assert WEIGHT_PRESETS["quality"] == {"quality": 1.0}


def test_weighted_sums_with_every_label_present():
    # w2: -0.05*0 + 0.15*0.5 + 0.25*1 + 0.05*0.25 - 0.10*0 + 0.40*0.75 = 0.075 + 0.25 + 0.0125 + 0.3 = 0.6375
    assert aggregate_labels(LABELS, "w2") == pytest.approx(0.6375)
    # w3: 0.15*0.5 + 0.35*1 + 0.40*0.75 = 0.075 + 0.35 + 0.3 = 0.725
    assert aggregate_labels(LABELS, "w3") == pytest.approx(0.725)
    assert aggregate_labels(LABELS, "quality") == pytest.approx(0.75)
    assert aggregate_labels(LABELS, {"quality": 0.5, "helpfulness": 0.5}) == pytest.approx(0.875)


def test_missing_label_rescales_weights_to_original_total():
    # w2 total = 0.70; without creativity the present weights sum to 0.55 and the sum without
    # its term is 0.6375 - 0.075 = 0.5625 -> 0.5625 * 0.70 / 0.55 = 0.7159090...
    absent = {k: v for k, v in LABELS.items() if k != "creativity"}
    assert aggregate_labels(absent, "w2") == pytest.approx(0.5625 * 0.70 / 0.55)
    assert aggregate_labels({**LABELS, "creativity": None}, "w2") == pytest.approx(0.7159090909)
    # only quality present under w2: weight 0.40 rescaled to 0.70 -> 0.70 * 0.75 = 0.525
    assert aggregate_labels({"quality": 0.75}, "w2") == pytest.approx(0.525)


def test_missing_quality_drops_the_example():
    assert aggregate_labels({k: v for k, v in LABELS.items() if k != "quality"}, "w2") is None
    assert aggregate_labels({**LABELS, "quality": None}, "quality") is None


def test_result_is_clipped_to_unit_interval():
    # -0.05*1 - 0.10*1 = -0.15 -> 0.0
    worst = {"violence": 1.0, "creativity": 0.0, "helpfulness": 0.0, "humor": 0.0, "toxicity": 1.0, "quality": 0.0}
    assert aggregate_labels(worst, "w2") == 0.0
    # 2.0 * 0.75 = 1.5 -> 1.0
    assert aggregate_labels({"quality": 0.75}, {"quality": 2.0}) == 1.0


def test_bad_weights_and_labels():
    with pytest.raises(ConfigError, match="allowed: w2, w3, quality"):
        aggregate_labels(LABELS, "w4")
    with pytest.raises(ConfigError, match="positive sum"):
        aggregate_labels(LABELS, {"quality": -1.0})
    with pytest.raises(DataError, match="'helpfulness' is 1.5"):
        aggregate_labels({**LABELS, "helpfulness": 1.5}, "w3")
    # total 0.4, but present quality + toxicity weigh 0.5 - 0.6 = -0.1: cannot rescale
    with pytest.raises(DataError, match="cannot be rescaled"):
        aggregate_labels({"quality": 0.5, "toxicity": 0.2}, {"quality": 0.5, "toxicity": -0.6, "helpfulness": 0.5})


@pytest.mark.parametrize(
    "y, bucket",
    [(0.0, "low"), (0.40, "low"), (0.4000001, "mid"), (0.6, "mid"), (0.8999999, "mid"), (0.90, "high"), (1.0, "high")],
)
def test_quality_bucket_edges(y, bucket):
    assert quality_bucket(y) == bucket


def test_quality_bucket_rejects_nan():
    with pytest.raises(DataError, match="NaN"):
        quality_bucket(math.nan)


def test_likert_to_unit_matches_thesis_table_2_values():
    # (v - 1) / 4 per rating: 2,1,1 -> (0.25 + 0 + 0) / 3 = 0.0833 (Table 2: 0.083)
    assert likert_to_unit([2, 1, 1]) == pytest.approx(1 / 12)
    # 3,1,1 -> 0.5 / 3 = 0.1667 (Table 2: 0.167)
    assert likert_to_unit([3, 1, 1]) == pytest.approx(0.5 / 3)
    # 4,5,5 -> (0.75 + 1 + 1) / 3 = 0.9167 (Table 2: 0.917)
    assert likert_to_unit([4, 5, 5]) == pytest.approx(2.75 / 3)
    # 7-point scale: (4 - 1) / 6 = 0.5
    assert likert_to_unit([4], scale=7) == 0.5


@pytest.mark.parametrize("values", [[], [0], [6], [2.5]])
def test_likert_rejects_bad_ratings(values):
    with pytest.raises(DataError):
        likert_to_unit(values)


def test_likert_rejects_bad_scale():
    with pytest.raises(ConfigError, match="likert.scale"):
        likert_to_unit([1], scale=1)
