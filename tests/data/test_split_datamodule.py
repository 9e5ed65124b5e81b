"""The train/validation plumbing every SFT/reward data module shares (rlhf/data/split_datamodule.py).

SplitDataModule itself holds the settings and builds the two loaders: a resumable, shuffled train
loader seeded by `seed` (one permutation per epoch, from seed + epoch) and a plain, in-order
validation loader. The split is made by each subclass's `setup` (split_train_val in
rlhf/data/mixture.py); the last tests check it end to end through SFTDataModule.
"""

from __future__ import annotations

import json

import pytest

from rlhf.core.models import load_backbone_tokenizer
from rlhf.data.resumable_loader import ResumableLoader
from rlhf.data.sft_datamodule import SFTDataModule
from rlhf.data.split_datamodule import SplitDataModule

TINY_SPEC = {"source": "tiny", "tokenizer": "embedded:smollm2-135m", "dtype": "float32",
             "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128, "seed": 0}}


class Numbers(SplitDataModule):
    """Smallest concrete module: examples are ints, a batch is the list of its examples."""

    def __init__(self, train, val, batch_size=4, eval_batch_size=None, seed=0):
        super().__init__(None, sources=[{"path": "x.jsonl"}], template="chatml", max_length=64, val_fraction=0.1,
                         batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=0, seed=seed)
        self.train_set, self.val_set = train, val

    def collator(self):
        return list


def epochs(loader, n: int) -> list[list[list[int]]]:
    return [list(loader) for _ in range(n)]


# ---------------------------------------------------------------- settings


def test_settings_are_copied_so_later_edits_by_the_caller_do_not_leak_in():
    sources = [{"path": "a.jsonl"}]
    module = SplitDataModule(None, sources=sources, template="chatml", max_length=128, val_fraction=0.05, batch_size=8,
                             eval_batch_size=None, num_workers=0, seed=7)
    sources[0]["path"] = "b.jsonl"
    assert [s.path for s in module.sources] == ["a.jsonl"]
    assert (module.template_name, module.max_length, module.val_fraction, module.seed) == ("chatml", 128, 0.05, 7)
    assert module.train_set is None and module.val_set is None and module.tokenizer is None


def test_eval_batch_size_defaults_to_the_train_batch_size():
    assert Numbers([], None, batch_size=4).eval_batch_size == 4
    assert Numbers([], None, batch_size=4, eval_batch_size=16).eval_batch_size == 16


def test_the_base_class_has_no_collator():
    module = SplitDataModule(None, sources=[], template="chatml", max_length=64, val_fraction=0.0, batch_size=2)
    with pytest.raises(NotImplementedError):
        module.collator()


# ---------------------------------------------------------------- train loader


def test_train_loader_serves_every_example_once_per_epoch_in_batches():
    loader = Numbers(list(range(10)), None, batch_size=4).train_dataloader()
    assert isinstance(loader, ResumableLoader)  # its position is saved in checkpoints
    assert len(loader) == 3  # ceil(10 / 4)
    batches = list(loader)
    assert [len(b) for b in batches] == [4, 4, 2]  # only the last batch is short
    assert sorted(x for b in batches for x in b) == list(range(10))  # disjoint and complete


def test_train_order_is_shuffled_and_fixed_by_the_seed():
    data = list(range(20))
    first = epochs(Numbers(data, None, seed=3).train_dataloader(), 2)
    again = epochs(Numbers(data, None, seed=3).train_dataloader(), 2)
    other = epochs(Numbers(data, None, seed=4).train_dataloader(), 2)
    assert first == again
    assert first[0] != other[0]
    assert [x for b in first[0] for x in b] != data  # shuffled, not in file order
    assert first[0] != first[1]  # a new order every epoch


def test_epoch_e_of_seed_s_is_epoch_0_of_seed_s_plus_e():
    # the per-epoch permutation is drawn from seed + epoch, so seed 5's second epoch is seed 6's first
    data = list(range(12))
    seed5 = epochs(Numbers(data, None, seed=5).train_dataloader(), 2)
    seed6 = epochs(Numbers(data, None, seed=6).train_dataloader(), 1)
    assert seed5[1] == seed6[0]


# ---------------------------------------------------------------- validation loader


def test_val_loader_is_in_order_with_the_eval_batch_size():
    module = Numbers(list(range(10)), list(range(100, 107)), batch_size=2, eval_batch_size=3)
    assert [list(b) for b in module.val_dataloader()] == [[100, 101, 102], [103, 104, 105], [106]]
    # not shuffled: the same batches every time it is asked for
    assert list(module.val_dataloader()) == list(module.val_dataloader())


@pytest.mark.parametrize("val", [None, []])
def test_no_validation_set_gives_no_validation_batches(val):
    # Lightning skips validation on an empty list; a DataLoader over nothing would be an error path
    assert Numbers(list(range(4)), val).val_dataloader() == []


# ---------------------------------------------------------------- the split, through SFTDataModule


def sft_module(tmp_path, n: int, val_fraction: float, seed: int) -> SFTDataModule:
    data = tmp_path / f"qa{n}.jsonl"
    data.write_text("".join(json.dumps({"q": f"What is {i} plus {i}?", "a": f"{2 * i}."}) + "\n" for i in range(n)))
    module = SFTDataModule(load_backbone_tokenizer(TINY_SPEC), sources=[{"path": str(data), "adapter": "generic",
                                        "fields": {"prompt": "q", "response": "a"}}],
                           val_fraction=val_fraction, batch_size=4, max_length=64, seed=seed)
    module.setup("fit")
    return module


def ids(dataset) -> set[tuple[int, ...]]:
    return {tuple(example["input_ids"]) for example in dataset}


def test_split_sizes_follow_val_fraction(tmp_path):
    # 20 * 0.1 = 2 validation records, 18 training
    module = sft_module(tmp_path, 20, 0.1, seed=0)
    assert (len(module.train_set), len(module.val_set)) == (18, 2)
    # 10 * 0.05 = 0.5 rounds to 0, but a positive fraction always keeps one validation record
    module = sft_module(tmp_path, 10, 0.05, seed=0)
    assert (len(module.train_set), len(module.val_set)) == (9, 1)


def test_split_is_disjoint_and_covers_every_record(tmp_path):
    module = sft_module(tmp_path, 20, 0.25, seed=1)
    train, val = ids(module.train_set), ids(module.val_set)
    assert len(train) == 15 and len(val) == 5  # 20 distinct records, none duplicated by the split
    assert not train & val
    assert len(train | val) == 20


def test_split_is_fixed_by_the_seed(tmp_path):
    a = ids(sft_module(tmp_path, 20, 0.25, seed=1).val_set)
    b = ids(sft_module(tmp_path, 20, 0.25, seed=1).val_set)
    c = ids(sft_module(tmp_path, 20, 0.25, seed=2).val_set)
    assert a == b
    assert a != c


def test_zero_val_fraction_trains_on_everything_without_validation(tmp_path):
    module = sft_module(tmp_path, 6, 0.0, seed=0)
    assert len(module.train_set) == 6 and module.val_set is None
    assert module.val_dataloader() == []
