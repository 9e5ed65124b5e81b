import json

import pytest
import torch

from rlhf.core.models import load_backbone_tokenizer
from rlhf.data.preference_datamodule import PreferenceCollator, PreferenceDataModule, group_pairs
from rlhf.core.errors import ConfigError, DataError

TINY = {"source": "tiny", "tokenizer": "embedded:smollm2-135m"}
USER = [{"role": "user", "content": "Rank these."}]


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def module(path, **kw):
    args = {"tokenizer": load_backbone_tokenizer(TINY), "sources": [{"path": str(path), "adapter": kw.pop("adapter", "grouped")}],
            "max_length": 64, "min_prompt_tokens": 8, "val_fraction": 0.0, "batch_size": 8}
    dm = PreferenceDataModule(**{**args, **kw})
    dm.setup()
    return dm


def test_pair_strategies_on_a_worked_ranking():
    record = {"responses": ["a", "b", "c", "d", "e"], "ranks": [2, 0, 4, 1, 3]}
    # best to worst: b(0) d(1) a(2) e(3) c(4); ICE-GRT: {b, d} x {e, c}, a unused
    assert group_pairs(record, "top2_bottom2", 0.0)[0] == [(1, 4), (1, 2), (3, 4), (3, 2)]
    assert group_pairs(record, "best_vs_rest", 0.0)[0] == [(1, 3), (1, 0), (1, 4), (1, 2)]
    assert len(group_pairs(record, "all_pairs", 0.0)[0]) == 10  # C(5, 2)
    # per-pair margin m · (rank_l - rank_w) with m = 0.5: b-e 0.5·3, b-c 0.5·4, d-e 0.5·2, d-c 0.5·3
    assert group_pairs(record, "top2_bottom2", 0.5)[1] == [1.5, 2.0, 1.0, 1.5]


def test_ties_and_identical_texts_give_no_pair():
    record = {"responses": ["same", "same", "other"], "ranks": [0, 1, 1]}
    # (0,1) has identical texts; (1,2) is a rank tie; only (0,2) remains
    assert group_pairs(record, "all_pairs", 0.0)[0] == [(0, 2)]


def test_collator_flattens_groups_with_offsets():
    groups = [{"input_ids": [[1, 2, 3], [4]], "pairs": [(0, 1)], "margins": [1.0]},
              {"input_ids": [[5, 6], [7, 8, 9, 10], [11]], "pairs": [(1, 0), (1, 2)], "margins": [2.0, 3.0]}]
    batch = PreferenceCollator(pad_token_id=0, padding_side="left", with_margin=True)(groups)
    assert batch["input_ids"].shape == (5, 4)
    assert batch["input_ids"][1].tolist() == [0, 0, 0, 4] and batch["attention_mask"][1].tolist() == [0, 0, 0, 1]
    # second group's rows start at offset 2
    assert batch["pair_index"].tolist() == [[0, 1], [3, 2], [3, 4]]
    assert batch["pair_group"].tolist() == [0, 1, 1]
    assert batch["pair_margin"].tolist() == [1.0, 2.0, 3.0]


def test_kway_group_is_scored_once_per_used_response(tmp_path):
    path = write(tmp_path / "groups.jsonl", [
        {"prompt": USER, "responses": ["r0", "r1", "r2", "r3", "r4"], "ranks": [0, 1, 2, 3, 4]},
        {"prompt": USER, "responses": ["x", "y"], "ranks": [0, 0]},  # a tie: no pair, group dropped
    ])
    dm = module(path, pairs="top2_bottom2")
    assert len(dm.train_set) == 1
    group = dm.train_set[0]
    assert len(group["input_ids"]) == 4  # rank-2 reply unused, so not tokenized
    # used replies r0 r1 r3 r4 -> positions 0 1 2 3; pairs (r0,r3) (r0,r4) (r1,r3) (r1,r4)
    assert group["pairs"] == [(0, 2), (0, 3), (1, 2), (1, 3)]
    batch = next(iter(dm.train_dataloader()))
    # packed (the default): one row for the group, four scored positions
    assert batch["input_ids"].size(0) == 1 and batch["score_index"].tolist() == [[0, c] for c in
                                                                               batch["score_index"][:, 1].tolist()]
    assert batch["pair_index"].shape == (4, 2)
    flat = next(iter(module(path, pairs="top2_bottom2", shared_prefix=False).train_dataloader()))
    assert flat["input_ids"].size(0) == 4 and "segment_ids" not in flat


def test_truncation_keeps_response_and_min_prompt_tokens(tmp_path):
    path = write(tmp_path / "pairs.jsonl", [{"prompt": "blah " * 300, "chosen": "yes " * 100, "rejected": "no"}])
    dm = module(path, adapter="pairs", max_length=40, min_prompt_tokens=10, truncation="per_response")
    long_ids, short_ids = dm.train_set[0]["input_ids"]
    tok = dm.tokenizer
    response_ids = tok("no<|im_end|>", add_special_tokens=False)["input_ids"]
    assert len(short_ids) == 40 and short_ids[-len(response_ids):] == response_ids
    # a response longer than 40 - 10 keeps 30 tokens; the prompt keeps its last 10 (incl. the assistant header)
    assert len(long_ids) == 40
    header = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    assert long_ids[10 - len(header):10] == header


def test_group_truncation_cuts_the_prompt_once_for_all_replies(tmp_path):
    path = write(tmp_path / "pairs.jsonl", [{"prompt": "blah " * 300, "chosen": "yes " * 100, "rejected": "no"}])
    per_response = module(path, adapter="pairs", max_length=40, min_prompt_tokens=10, truncation="per_response")
    group = module(path, adapter="pairs", max_length=40, min_prompt_tokens=10)  # truncation=group, the default
    long_ids, short_ids = group.train_set[0]["input_ids"]
    response_ids = group.tokenizer("no<|im_end|>", add_special_tokens=False)["input_ids"]
    # the long reply is cut exactly as on its own (30 reply + 10 prompt tokens) ...
    assert long_ids == per_response.train_set[0]["input_ids"][0]
    # ... and the short reply gets the same 10 prompt tokens, not the 40 - len(reply) it would get alone
    assert short_ids == long_ids[:10] + response_ids
    with pytest.raises(ConfigError, match="data.truncation"):
        module(path, adapter="pairs", truncation="both")


def test_val_split_keeps_groups_whole(tmp_path):
    records = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(20)]
    dm = module(write(tmp_path / "p.jsonl", records), adapter="pairs", val_fraction=0.1)
    assert len(dm.train_set) == 18 and len(dm.val_set) == 2  # 10 % of 20
    batch = next(iter(dm.val_dataloader()))
    assert batch["score_index"][:, 0].tolist() == [0, 0, 1, 1] and batch["pair_index"].tolist() == [[0, 1], [2, 3]]


def test_bad_records_name_file_and_record(tmp_path):
    bad = write(tmp_path / "bad.jsonl", [{"prompt": USER, "responses": ["a", "b"], "ranks": [0]}])
    with pytest.raises(DataError, match=r"bad.jsonl, record 1: 2 responses but 1 ranks"):
        module(bad)
    ended = write(tmp_path / "ended.jsonl", [{"prompt": [{"role": "assistant", "content": "x"}],
                                              "responses": ["a", "b"], "ranks": [0, 1]}])
    with pytest.raises(DataError, match="ending with a user turn"):
        module(ended)
    with pytest.raises(ConfigError, match=r"data.pairs.*all_pairs"):
        module(write(tmp_path / "ok.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}]),
               adapter="pairs", pairs="top3")


def test_hh_rlhf_source_loads(shared_data_dir):
    path = shared_data_dir / "preference" / "hh_rlhf_harmless_base_test_dev.jsonl.gz"
    dm = PreferenceDataModule(load_backbone_tokenizer(TINY), sources=[{"path": str(path), "adapter": "hh_rlhf", "limit": 30}],
                              max_length=128, min_prompt_tokens=32, val_fraction=0.1, batch_size=4)
    dm.setup()
    assert len(dm.train_set) + len(dm.val_set) <= 30 and len(dm.val_set) == 3
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].size(1) <= 2 * 128  # a packed row holds the prompt once and both replies
    assert torch.equal(batch["pair_index"][:, 0] + 1, batch["pair_index"][:, 1])  # (chosen, rejected) adjacent
