"""Where the policy snapshots of the KL-gold frontier fall."""

from __future__ import annotations

from callbacks.policy_snapshots import snapshot_steps


def test_snapshot_steps_are_spread_evenly_inside_the_run():
    assert snapshot_steps(24, 2) == [8, 16]
    assert snapshot_steps(18, 3) == [4, 9, 14]          # 4.5 and 13.5 round half to even
    assert snapshot_steps(3, 2) == [1, 2]
    assert snapshot_steps(2, 3) == [1]                   # 0.5 -> 0 and 1.5 -> 2 fall on the ends; 1 twice
    assert snapshot_steps(24, 0) == []
