import math

import pytest
import torch

from rlhf.reward_model.metrics import BucketedRegressionError, PairwiseAccuracy, RewardMoments, bucket_index


def test_pairwise_accuracy_counts_a_tie_as_wrong_and_accumulates():
    metric = PairwiseAccuracy()
    # batch 1: 2.0 > 1.0 right, 0.5 = 0.5 tie (wrong), -1.0 < 0.0 wrong
    metric.update(torch.tensor([2.0, 0.5, -1.0]), torch.tensor([1.0, 0.5, 0.0]))
    # batch 2: 3.0 > -3.0 right
    metric.update(torch.tensor([3.0]), torch.tensor([-3.0]))
    # 2 right of 4
    assert metric.compute().item() == pytest.approx(0.5)


def test_reward_moments_mean_and_sample_std():
    metric = RewardMoments()
    metric.update(torch.tensor([1.0, 2.0]))
    metric.update(torch.tensor([3.0, 6.0]))
    out = metric.compute()
    # mean = 12 / 4 = 3; squared deviations 4 + 1 + 0 + 9 = 14; sample var = 14 / 3
    assert out["mean"].item() == pytest.approx(3.0)
    assert out["std"].item() == pytest.approx(math.sqrt(14 / 3), rel=1e-6)
    assert out["count"].item() == 4


def test_bucket_edges_follow_quality_bucket_rule():
    # 0.40 is low (<= 0.40), 0.41 mid, 0.89 mid, 0.90 high (>= 0.90)
    assert bucket_index(torch.tensor([0.0, 0.40, 0.41, 0.89, 0.90, 1.0])).tolist() == [0, 0, 1, 1, 2, 2]


def test_bucketed_mse_and_mae_on_hand_numbers():
    metric = BucketedRegressionError()
    target = torch.tensor([0.2, 0.3, 0.5, 0.8, 0.95])
    pred = torch.tensor([0.4, 0.3, 0.6, 0.5, 0.75])
    metric.update(pred, target)
    out = metric.compute()
    # errors pred - target: +0.2, 0.0, +0.1, -0.3, -0.2
    # low  {0.2, 0.3}: MSE (0.04 + 0) / 2 = 0.02,   MAE (0.2 + 0) / 2 = 0.1
    # mid  {0.5, 0.8}: MSE (0.01 + 0.09) / 2 = 0.05, MAE (0.1 + 0.3) / 2 = 0.2
    # high {0.95}:     MSE 0.04,                     MAE 0.2
    # all: MSE (0.04 + 0 + 0.01 + 0.09 + 0.04) / 5 = 0.036, MAE (0.2 + 0 + 0.1 + 0.3 + 0.2) / 5 = 0.16
    expected = {"mse_low": 0.02, "mae_low": 0.1, "mse_mid": 0.05, "mae_mid": 0.2,
                "mse_high": 0.04, "mae_high": 0.2, "mse": 0.036, "mae": 0.16}
    for key, value in expected.items():
        assert out[key].item() == pytest.approx(value, abs=1e-6), key


def test_empty_bucket_is_nan_not_zero():
    metric = BucketedRegressionError()
    metric.update(torch.tensor([0.5]), torch.tensor([0.6]))
    out = metric.compute()
    assert math.isnan(out["mse_low"].item()) and math.isnan(out["mae_high"].item())
    assert out["mse_mid"].item() == pytest.approx(0.01, abs=1e-7)  # (0.5 - 0.6)^2
