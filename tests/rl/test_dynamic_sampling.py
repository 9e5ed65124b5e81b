"""DAPO's dynamic sampling (docs/algorithms.md §1.3): which groups are kept, how refills fill the
batch, and how the rollouts of several prompt batches are merged."""

from __future__ import annotations

import torch

from rlhf.rl.dynamic_sampling import chosen_groups, dynamic_sample, informative_groups
from rlhf.rl.rollout import Generation
from rlhf.rl.rollout_step import Rollout, concat_rollouts


def fake_rollout(tag: str, n_rows: int, query_width: int, response_width: int) -> Rollout:
    ids = torch.arange(n_rows * response_width).reshape(n_rows, response_width) + 100
    mask = torch.ones(n_rows, response_width, dtype=torch.long)
    gen = Generation(ids, mask, torch.full((n_rows, response_width), -1.0), torch.ones(n_rows, dtype=torch.bool),
                     torch.ones(n_rows, response_width))
    texts = [f"{tag}{i}" for i in range(n_rows)]
    return Rollout([[{"role": "user", "content": t}] for t in texts], torch.full((n_rows, query_width), 7),
                   torch.ones(n_rows, query_width, dtype=torch.long), gen, texts, [{"id": t} for t in texts])


def test_informative_groups_by_hand():
    scores = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.5, 0.5])
    assert informative_groups(scores, 2).tolist() == [False, True, False, False]
    assert informative_groups(scores, 4).tolist() == [True, True]


def test_chosen_groups_prefers_informative_then_fills_in_order():
    assert chosen_groups([False, True, False, True, True], 2) == ([1, 3], 0)
    assert chosen_groups([False, True, False], 2) == ([0, 1], 1)


def test_concat_pads_prompts_left_and_responses_right():
    merged = concat_rollouts([fake_rollout("a", 2, 3, 2), fake_rollout("b", 2, 1, 4)], pad_id=0)
    assert merged.query_ids.shape == (4, 3) and merged.generation.response_ids.shape == (4, 4)
    assert merged.query_mask[2].tolist() == [0, 0, 1]            # re-left-padded
    assert merged.generation.response_mask[0].tolist() == [1, 1, 0, 0]   # re-right-padded
    assert merged.generation.logprobs[0].tolist() == [-1.0, -1.0, 0.0, 0.0]
    assert merged.texts == ["a0", "a1", "b0", "b1"] and merged.metadata[3] == {"id": "b1"}


def test_refills_until_the_batch_holds_informative_groups_then_stops():
    """Two prompts x two samples: the first batch has one informative group, the first refill none,
    the second one: the batch trains on groups a1 and c0, after two refills."""
    first, first_scores = fake_rollout("a", 4, 2, 2), torch.tensor([0.0, 0.0, 1.0, 0.0])
    refills = [(fake_rollout("b", 4, 2, 3), torch.tensor([1.0, 1.0, 0.0, 0.0])),
               (fake_rollout("c", 4, 2, 2), torch.tensor([0.0, 1.0, 2.0, 2.0])),
               (fake_rollout("d", 4, 2, 2), torch.tensor([0.0, 1.0, 0.0, 1.0]))]
    calls = []

    def refill(i):
        calls.append(i)
        return refills[i]

    rollout, scores, counts, rows = dynamic_sample(first, first_scores, 2, 3, refill, lambda ok: ok, pad_id=0)
    assert calls == [0, 1]
    assert rows == [2, 3, 8, 9]  # group a1, then c0 (rows 8-9 of a, b, c concatenated)
    assert rollout.texts == ["a2", "a3", "c0", "c1"]
    assert scores.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert counts == {"refills": 2.0, "dropped_groups": 4.0, "filler_groups": 0.0, "groups_seen": 6.0}


def test_out_of_refills_fills_with_dropped_groups():
    first, first_scores = fake_rollout("a", 4, 2, 2), torch.tensor([0.0, 0.0, 1.0, 1.0])

    def refill(i):
        return fake_rollout("b", 4, 2, 2), torch.tensor([3.0, 3.0, 0.0, 2.0])

    rollout, scores, counts, _ = dynamic_sample(first, first_scores, 2, 1, refill, lambda ok: ok, pad_id=0)
    assert rollout.texts == ["a0", "a1", "b2", "b3"]  # the informative b-group plus the first dropped one
    assert counts["filler_groups"] == 1.0 and counts["refills"] == 1.0


def test_no_refill_when_every_group_is_informative():
    first, first_scores = fake_rollout("a", 4, 2, 2), torch.tensor([0.0, 1.0, 1.0, 0.0])
    rollout, _, counts, _ = dynamic_sample(first, first_scores, 2, 3, lambda i: 1 / 0, lambda ok: ok, pad_id=0)
    assert rollout.texts == first.texts and counts["refills"] == 0.0
