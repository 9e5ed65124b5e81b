"""ResumableLoader: one seeded shuffle per epoch, exact continuation from its state, rank shards."""

from __future__ import annotations

import pytest

import rlhf.data.resumable_loader as resumable
from rlhf.data.resumable_loader import ResumableLoader


def as_lists(batches):
    return [list(b) for b in batches]


def loader(n=10, batch=3, seed=1, shuffle=True):
    return ResumableLoader(list(range(n)), batch, collate_fn=lambda rows: rows, seed=seed, shuffle=shuffle)


def test_unshuffled_batches_are_in_order_with_a_short_last_batch():
    assert as_lists(loader(shuffle=False)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert len(loader()) == 4


def test_each_epoch_is_a_permutation_and_epochs_differ():
    source = loader()
    first, second = sum(as_lists(source), []), sum(as_lists(source), [])
    assert sorted(first) == sorted(second) == list(range(10))
    assert first != second and source.state_dict() == {"epoch": 2, "served": 0}


def test_a_new_loader_with_the_saved_state_continues_exactly():
    uninterrupted = loader()
    expected = as_lists(uninterrupted) + as_lists(uninterrupted)      # two epochs
    source = loader()
    seen = []
    for batch in source:
        seen.append(list(batch))
        if len(seen) == 2:
            break
    state = source.state_dict()
    assert state == {"epoch": 0, "served": 2}
    resumed = loader()
    resumed.load_state_dict(state)
    seen += as_lists(resumed) + as_lists(resumed)
    assert seen == expected


def test_two_ranks_split_the_epoch_like_a_distributed_sampler(monkeypatch):
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(resumable, "rank_and_world", lambda rank=rank: (rank, 2))
        source = loader(n=7, batch=2, shuffle=False)
        assert len(source) == 2                                          # ceil(ceil(7/2)/2)
        shards.append(sum(as_lists(source), []))
    # 7 examples on 2 ranks: 4 each, the permutation wraps around to pad rank 1 (as DistributedSampler).
    assert shards == [[0, 2, 4, 6], [1, 3, 5, 0]]


@pytest.mark.parametrize("n", [1, 5])
def test_more_ranks_than_examples_still_fill_every_rank(monkeypatch, n):
    monkeypatch.setattr(resumable, "rank_and_world", lambda: (2, 4))
    assert len(sum(as_lists(loader(n=n, batch=2)), [])) == -(-n // 4)


def take_len(source):
    """Lightning's way: it stops asking at len(source) instead of exhausting the iterator."""
    iterator = iter(source)
    return [list(next(iterator)) for _ in range(len(source))]


def test_epochs_consumed_up_to_len_still_advance():
    source = loader()
    first, second = take_len(source), take_len(source)
    assert second and sorted(sum(second, [])) == list(range(10)) and first != second
    assert source.state_dict() == {"epoch": 1, "served": 4}


def test_prompt_loader_epochs_consumed_up_to_len_still_advance():
    from rlhf.data.prompt_datamodule import PromptLoader

    records = [{"id": str(i), "prompt": [], "input_ids": [i]} for i in range(6)]
    source = PromptLoader(records, batch_size=2, seed=0)
    first = [batch["ids"] for batch in take_len_dicts(source)]
    second = [batch["ids"] for batch in take_len_dicts(source)]
    assert len(second) == 3 and sorted(sum(second, [])) == [str(i) for i in range(6)] and first != second


def take_len_dicts(source):
    iterator = iter(source)
    return [next(iterator) for _ in range(len(source))]
