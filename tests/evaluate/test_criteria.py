import pytest

from rlhf.core.errors import DataError
from rlhf.annotators.criteria import ICE_GRT_WEIGHTS
from rlhf.evaluate.criteria import criterion_score, overall_score, score_annotations

CRITERIA = ["clarity", "accuracy", "completeness", "safety", "courtesy", "comfortableness", "conciseness", "context"]


@pytest.mark.parametrize("values, expected", [
    # ICE-GRT: 6*(98.1+97.0+92.9) + 3*(92.2+100+92.22) + 1*(91.8+98.1) = 1728 + 853.26 + 189.9 = 2771.16; /29 = 95.557
    ([98.1, 97.0, 92.9, 92.2, 100, 92.22, 91.8, 98.1], 95.557),
    # Llama2 SFT: 6*238.1 + 3*293.2 + 193.9 = 1428.6 + 879.6 + 193.9 = 2502.1; /29 = 86.279
    ([95.9, 77.4, 64.8, 96.6, 100, 96.6, 95.1, 98.8], 86.279),
    # ICE-Instruct: 6*244.05 + 3*294.0 + 187.33 = 1464.3 + 882 + 187.33 = 2533.63; /29 = 87.367
    ([88.5, 84.44, 71.11, 100, 95.9, 98.1, 93.33, 94.0], 87.367),
])
def test_overall_reproduces_ice_grt_table_3(values, expected):
    assert sum(ICE_GRT_WEIGHTS.values()) == 29
    assert overall_score(dict(zip(CRITERIA, values))) == pytest.approx(expected, abs=1e-3)


def test_criterion_score_maps_ratings_to_percent():
    # (5 + 2 + 0 + 5) / 4 = 3 -> 3/5 = 60 %
    assert criterion_score(["positive", "neutral", "negative", "positive"]) == pytest.approx(60.0)
    with pytest.raises(ValueError, match="rating"):
        criterion_score(["great"])


def test_score_annotations_per_model():
    rows = [{"model": "m", "criterion": c, "rating": "positive"} for c in CRITERIA]
    rows.append({"model": "m", "criterion": "Clarity", "rating": "negative"})
    out = score_annotations(rows)["m"]
    # clarity: (5 + 0)/2 = 2.5 -> 50 %; all else 100 %
    # overall = (6*50 + (29-6)*100) / 29 = (300 + 2300) / 29 = 2600/29 = 89.655
    assert out["clarity"] == pytest.approx(50.0)
    assert out["overall"] == pytest.approx(89.655, abs=1e-3)
    with pytest.raises(DataError, match="record 1"):
        score_annotations([{"model": "m", "criterion": "humour", "rating": "positive"}], source="ratings.jsonl")
