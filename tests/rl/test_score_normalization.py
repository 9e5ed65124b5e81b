"""Hand-worked checks of running reward normalisation and score clipping (docs/methods.md §4.3 steps 3–4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf.core.errors import ConfigError
from rlhf.core.running_stats import RunningMeanStd
from rlhf.rl.score_normalization import clip_scores, normalize_and_clip


def test_merging_two_batches_equals_numpy_over_the_concatenation():
    stats = RunningMeanStd()
    stats.update(torch.tensor([1.0, 2.0, 3.0]))
    stats.update(torch.tensor([10.0, 20.0]))
    # by hand over 1, 2, 3, 10, 20: mean 36/5 = 7.2 ;
    # squared deviations 38.44 + 27.04 + 17.64 + 7.84 + 163.84 = 254.8 -> var 50.96, std 7.138627
    assert stats.count == 5
    assert stats.mean == pytest.approx(7.2)
    assert stats.std == pytest.approx(7.138627, abs=1e-6)
    both = np.array([1.0, 2.0, 3.0, 10.0, 20.0])
    assert stats.mean == pytest.approx(both.mean())
    assert stats.std == pytest.approx(both.std())


def test_many_uneven_batches_match_numpy():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=n) for n in (1, 7, 2, 31, 5)]
    stats = RunningMeanStd()
    for chunk in chunks:
        stats.update(torch.tensor(chunk, dtype=torch.float32))
    everything = np.concatenate(chunks).astype(np.float32).astype(np.float64)
    assert stats.count == everything.size
    assert stats.mean == pytest.approx(everything.mean(), abs=1e-9)
    assert stats.std == pytest.approx(everything.std(), abs=1e-9)


def test_empty_update_is_a_no_op_and_state_round_trips():
    stats = RunningMeanStd()
    stats.update(torch.tensor([2.0, 4.0]))
    stats.update(torch.tensor([]))
    state = stats.state_dict()
    assert state == {"mean": 3.0, "var": 1.0, "count": 2}
    restored = RunningMeanStd()
    restored.load_state_dict(state)
    assert (restored.mean, restored.std, restored.count) == (3.0, 1.0, 2)


def test_normalize_switches():
    stats = RunningMeanStd()
    stats.update(torch.tensor([2.0, 4.0]))  # mean 3, std 1
    x = torch.tensor([5.0])
    assert stats.normalize(x).tolist() == pytest.approx([2.0])  # 5 - 3
    assert stats.normalize(x, subtract_mean=False, divide_std=True).tolist() == pytest.approx([5.0])
    stats.update(torch.tensor([0.0, 6.0]))  # values 2, 4, 0, 6: mean 3, var (1+1+9+9)/4 = 5
    # (5 - 3) / sqrt(5) = 0.894427
    assert stats.normalize(x, divide_std=True).tolist() == pytest.approx([0.894427], abs=1e-6)


def test_clip_scores():
    x = torch.tensor([-7.0, -1.0, 0.5, 4.0, 9.0])
    assert clip_scores(x, 4.0).tolist() == [-4.0, -1.0, 0.5, 4.0, 4.0]
    assert torch.equal(clip_scores(x, None), x)
    with pytest.raises(ConfigError, match="reward.score_clip"):
        clip_scores(x, 0.0)


def test_normalize_and_clip_updates_stats_first_then_normalises_then_clips():
    stats = RunningMeanStd()
    scores = torch.tensor([1.0, 3.0, 11.0])
    # stats absorb [1, 3, 11] first: mean 5 -> [-4, -2, 6] -> clip 4 -> [-4, -2, 4]
    out = normalize_and_clip(scores, stats, subtract_mean=True, divide_std=False, clip=4.0)
    assert out.tolist() == pytest.approx([-4.0, -2.0, 4.0])
    # next batch [5]: stats over 1, 3, 11, 5 have mean 20/4 = 5 -> 0
    out = normalize_and_clip(torch.tensor([5.0]), stats, True, False, 4.0)
    assert out.tolist() == pytest.approx([0.0])


def test_normalize_and_clip_dividing_by_std():
    stats = RunningMeanStd()
    # mean 5, var (16 + 4 + 36) / 3 = 18.666667, std 4.320494
    # (1-5)/4.320494 = -0.925820 ; (3-5)/4.320494 = -0.462910 ; (11-5)/4.320494 = 1.388730
    out = normalize_and_clip(torch.tensor([1.0, 3.0, 11.0]), stats, True, True, None)
    assert out.tolist() == pytest.approx([-0.925820, -0.462910, 1.388730], abs=1e-5)


def test_normalize_and_clip_without_stats_only_clips():
    out = normalize_and_clip(torch.tensor([-6.0, 2.0]), None, True, True, 4.0)
    assert out.tolist() == [-4.0, 2.0]
