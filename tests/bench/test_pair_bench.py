"""bench/pair_bench.py: TRL is handed our batches in our order, and ratios are paired run by run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from torch.utils.data import SequentialSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import pair_bench  # noqa: E402
from harness import paired_ratios, run_count_note  # noqa: E402

from rlhf.data.resumable_loader import ResumableLoader  # noqa: E402


class FakeDataModule:
    def __init__(self, n: int, batch_size: int, seed: int):
        self.train_set = [{"id": i} for i in range(n)]
        self.batch_size, self.seed = batch_size, seed

    def train_dataloader(self):
        return ResumableLoader(self.train_set, self.batch_size, collate_fn=lambda rows: [r["id"] for r in rows],
                               seed=self.seed)


def test_groups_come_in_the_order_our_loader_serves_them():
    datamodule = FakeDataModule(n=11, batch_size=3, seed=7)
    served = [i for batch in datamodule.train_dataloader() for i in batch]
    assert served != list(range(11))  # shuffled, so order is something to get right
    assert [g["id"] for g in pair_bench.groups_in_our_order(datamodule)] == served


def test_sequential_trainer_reads_its_train_set_in_order():
    class Trainer:
        def _get_train_sampler(self, train_dataset=None):
            raise AssertionError("the shuffling sampler must not be used")

    trainer = pair_bench.sequential(Trainer)()
    trainer.train_dataset = list("abcd")
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, SequentialSampler) and list(sampler) == [0, 1, 2, 3]


def test_ratios_are_computed_run_by_run_not_from_medians():
    ours = [{"pairs_per_s": 3.0}, {"pairs_per_s": 1.0}, {"pairs_per_s": 2.0}]
    trl = [{"pairs_per_s": 2.0}, {"pairs_per_s": 1.0}, {"pairs_per_s": 1.0}]
    # per run: 1.5, 1.0, 2.0 -> median 1.5; the ratio of medians would be 2.0 / 1.0 = 2.0
    assert paired_ratios(ours, trl, ("pairs_per_s",)) == {
        "pairs_per_s": {"median": 1.5, "min": 1.0, "max": 2.0, "each": [1.5, 1.0, 2.0]}}
    with pytest.raises(ValueError, match="as many runs"):
        paired_ratios(ours, trl[:2], ("pairs_per_s",))


def test_fewer_than_five_runs_or_no_warmup_is_flagged():
    assert run_count_note(5, 1) is None
    assert "below the standard" in run_count_note(3, 1)
    assert "below the standard" in run_count_note(5, 0)
