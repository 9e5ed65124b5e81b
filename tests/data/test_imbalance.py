from collections import Counter

import pytest

from rlhf.data.imbalance import (
    apply_loss_weights,
    apply_variant,
    mid_bin_edges,
    oversample_low,
    parse_variant,
    stratified_undersample_mid,
)
from rlhf.core.errors import ConfigError, DataError


def thesis_train_set():
    """Bucket counts of the thesis training set (§5.3.1): 4,104 low + 26,961 mid + 7,787 high = 38,852.

    Mid scores sit at the centre of each of the 5 equal-width bins, 5,392 per bin (+1 in the
    last), so every bin holds more than 1,600.
    """
    low = [{"score": 0.2, "id": f"l{i}"} for i in range(4104)]
    mid = [{"score": 0.45 + 0.1 * (i % 5), "id": f"m{i}"} for i in range(26960)] + [{"score": 0.85, "id": "m_last"}]
    high = [{"score": 0.95, "id": f"h{i}"} for i in range(7787)]
    return low + mid + high


def buckets(records):
    return Counter(rec["bucket"] for rec in records)


def test_oversample_low_doubles_low_bucket_thesis_counts():
    out = oversample_low(thesis_train_set())
    # 4,104 x 2 = 8,208 low; 38,852 + 4,104 = 42,956 in all
    assert buckets(out) == {"low": 8208, "mid": 26961, "high": 7787}
    assert len(out) == 42956
    assert all(rec["weight"] == 1.0 and rec["is_augmented"] is False for rec in out)


def test_loss_weight_after_oversampling_thesis_arithmetic():
    out = apply_loss_weights(oversample_low(thesis_train_set()), strength=0.75)
    # W = 42,956 / 8,208 = 5.233430...; scaled: 0.75 * W = 3.925073
    w = 42956 / 8208
    assert w == pytest.approx(5.2334308)
    low_weights = [rec["weight"] for rec in out if rec["bucket"] == "low"]
    assert len(low_weights) == 8208 and all(w == pytest.approx(3.9250731) for w in low_weights)
    assert {rec["weight"] for rec in out if rec["bucket"] != "low"} == {1.0}
    # one_plus: 1 + 0.75 * (5.2334308 - 1) = 4.175073
    out = apply_loss_weights(oversample_low(thesis_train_set()), strength=0.75, mode="one_plus")
    assert all(rec["weight"] == pytest.approx(4.1750731) for rec in out if rec["bucket"] == "low")


def test_constant_weight_and_no_weighting():
    records = [{"score": 0.1}, {"score": 0.5}, {"score": 0.95}]
    assert [r["weight"] for r in apply_loss_weights(records, constant=1.4)] == [1.4, 1.0, 1.0]
    assert [r["weight"] for r in apply_loss_weights(records)] == [1.0, 1.0, 1.0]
    # no low example: nothing to up-weight
    assert [r["weight"] for r in apply_loss_weights(records[1:], strength=0.5)] == [1.0, 1.0]
    with pytest.raises(ConfigError, match="not both"):
        apply_loss_weights(records, strength=0.5, constant=1.4)
    with pytest.raises(ConfigError, match="allowed: scaled, one_plus"):
        apply_loss_weights(records, strength=0.5, mode="square")


def test_under_s_8k_takes_1600_per_full_bin():
    out = stratified_undersample_mid(thesis_train_set(), n_total=8000, seed=0)
    # 8,000 / 5 = 1,600 per bin; low and high untouched: 4,104 + 8,000 + 7,787 = 19,891
    assert buckets(out) == {"low": 4104, "mid": 8000, "high": 7787}
    per_bin = Counter(round(rec["score"], 2) for rec in out if rec["bucket"] == "mid")
    assert per_bin == {0.45: 1600, 0.55: 1600, 0.65: 1600, 0.75: 1600, 0.85: 1600}


def test_undersampling_is_seeded_and_keeps_order():
    records = thesis_train_set()
    first = [rec["id"] for rec in stratified_undersample_mid(records, 8000, seed=0)]
    assert first == [rec["id"] for rec in stratified_undersample_mid(records, 8000, seed=0)]
    assert first != [rec["id"] for rec in stratified_undersample_mid(records, 8000, seed=1)]
    position = {rec["id"]: i for i, rec in enumerate(records)}
    assert [position[i] for i in first] == sorted(position[i] for i in first)
    assert "bucket" not in records[0]  # the input is not modified


def test_short_bin_is_kept_whole_and_remainder_goes_to_first_bins():
    # quotas for n_total = 7 over 5 bins: 2, 2, 1, 1, 1; bin 0 holds only 1 record -> keeps 1
    records = [{"score": 0.45}] + [{"score": s} for s in (0.55,) * 4 + (0.65,) * 4 + (0.75,) * 4 + (0.85,) * 4]
    out = stratified_undersample_mid(records, n_total=7, seed=3)
    assert Counter(rec["score"] for rec in out) == {0.45: 1, 0.55: 2, 0.65: 1, 0.75: 1, 0.85: 1}


def test_bin_edges_are_exact_and_left_closed():
    assert mid_bin_edges(5) == [0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    # 0.6, 0.65, 0.69 all fall in bin [0.6, 0.7): with 1 per bin only one of them survives
    # (if 0.6 slipped into bin [0.5, 0.6) two would survive)
    out = stratified_undersample_mid([{"score": 0.6}, {"score": 0.65}, {"score": 0.69}], n_total=5, seed=0)
    assert len(out) == 1


def test_bad_score_names_the_record():
    with pytest.raises(DataError, match="record 1"):
        oversample_low([{"score": 0.3}, {"score": 1.2}])
    with pytest.raises(DataError, match="record 0"):
        oversample_low([{"text": "no score"}])


def test_parse_variant_examples():
    assert parse_variant("logistic+augment+under_s_8k+wgt_s_075") == {
        "loss": "logistic",
        "augment": True,
        "oversample": False,
        "undersample_n": 8000,
        "weight_strength": 0.75,
        "weight_constant": None,
    }
    assert parse_variant("sig+mse + augment + over_s + under_s_16k + wgt_1_4") == {
        "loss": "sig+mse",
        "augment": True,
        "oversample": True,
        "undersample_n": 16000,
        "weight_strength": None,
        "weight_constant": 1.4,
    }
    # Table 7 rows name no loss
    assert parse_variant("over_s + wgt_s_05") == {
        "loss": None,
        "augment": False,
        "oversample": True,
        "undersample_n": None,
        "weight_strength": 0.5,
        "weight_constant": None,
    }
    assert parse_variant("mse+over_s")["loss"] == "mse"


@pytest.mark.parametrize(
    "name, message",
    [
        ("logistic+over_sample", r"unknown part 'over_sample'.*allowed: logistic, sig\+mse"),
        ("logistic+mse", "sets loss twice"),
        ("over_s+over_s", "sets oversample twice"),
        ("wgt_s_05+wgt_1_4", "choose one weighting"),
        ("augment+sig", "unknown part 'sig'"),
    ],
)
def test_parse_variant_errors(name, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_variant(name)
    assert err.value.key == "reward.variant"


class HalveScoreAugmenter:
    """Stand-in for ParaphraseAugmenter: one copy of each low record with half its score."""

    def augment(self, records):
        return [{**r, "score": r["score"] / 2, "is_augmented": True} for r in records if r["bucket"] == "low"]


def test_apply_variant_runs_augment_oversample_undersample_then_weights():
    records = [{"score": s} for s in (0.2, 0.3, 0.45, 0.46, 0.55, 0.95)]
    variant = {"augment": True, "oversample": True, "undersample_n": 5, "weight_strength": 0.5, "weight_constant": None}
    out = apply_variant(records, variant, seed=0, augmenter=HalveScoreAugmenter())
    # augment: + 0.1, 0.15 -> 4 low; over_s: 8 low; under (1 per bin): bin [0.4,0.5) keeps 1 of 0.45/0.46,
    # bin [0.5,0.6) keeps 0.55 -> 8 low + 2 mid + 1 high = 11
    assert buckets(out) == {"low": 8, "mid": 2, "high": 1}
    assert sum(rec["is_augmented"] for rec in out) == 4
    assert sorted(rec["score"] for rec in out if rec["is_augmented"]) == [0.1, 0.1, 0.15, 0.15]
    # weights last, counted on the final set: W = 11 / 8 = 1.375, s = 0.5 -> 0.6875
    assert {rec["weight"] for rec in out if rec["bucket"] == "low"} == {0.6875}
    assert {rec["weight"] for rec in out if rec["bucket"] != "low"} == {1.0}


def test_apply_variant_needs_augmenter_for_augment():
    with pytest.raises(ConfigError, match="needs a paraphrase augmenter"):
        apply_variant([{"score": 0.1}], parse_variant("augment"), seed=0)
