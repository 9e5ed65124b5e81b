"""Source mixtures by weight (ICE-GRT in-domain + general blend, docs/methods.md §2.4) and the 95/5 split."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from rlhf.data.mixture import mix_sources, split_train_val
from rlhf.data.source_spec import load_source
from rlhf.core.errors import ConfigError


def _records(tag: str, n: int) -> list[dict]:
    return [{"source": tag, "i": i} for i in range(n)]


def test_total_with_weights_sets_each_share():
    # total 40, weights 3:1 -> in-domain round(40 * 3/4) = 30 of 50 (no repeats), general round(40 * 1/4) = 10 of 20.
    out = mix_sources([_records("in", 50), _records("gen", 20)], [3.0, 1.0], total=40, seed=0)
    counts = Counter(r["source"] for r in out)
    assert counts == {"in": 30, "gen": 10}
    assert len({r["i"] for r in out if r["source"] == "in"}) == 30  # drawn without replacement


def test_share_beyond_source_size_repeats_whole_copies_first():
    # total 25, weights 4:1 -> source A round(25 * 0.8) = 20 from 8 records = 2 full copies + 4 sampled;
    # source B round(25 * 0.2) = 5 of 10.
    out = mix_sources([_records("a", 8), _records("b", 10)], [4.0, 1.0], total=25, seed=1)
    per_record = Counter(r["i"] for r in out if r["source"] == "a")
    assert sum(per_record.values()) == 20
    assert sorted(per_record.values()) == [2] * 4 + [3] * 4
    assert Counter(r["source"] for r in out)["b"] == 5


def test_without_total_weight_scales_each_source_by_its_own_size():
    # weight 2 on 6 records -> 12 (every record twice); weight 0.5 on 10 -> 5; weight 0 drops a source.
    out = mix_sources([_records("a", 6), _records("b", 10), _records("c", 4)], [2.0, 0.5, 0.0], total=None, seed=0)
    counts = Counter(r["source"] for r in out)
    assert counts == {"a": 12, "b": 5}
    assert set(Counter(r["i"] for r in out if r["source"] == "a").values()) == {2}


def test_mixture_is_shuffled_and_seeded():
    groups = [_records("a", 30), _records("b", 30)]
    first = mix_sources(groups, [1, 1], total=60, seed=3)
    assert first == mix_sources(groups, [1, 1], total=60, seed=3)
    assert first != mix_sources(groups, [1, 1], total=60, seed=4)
    # Shuffled across sources: the first half is not all from one source.
    assert {r["source"] for r in first[:30]} == {"a", "b"}


@pytest.mark.parametrize("weights", [[1.0], [-1.0, 2.0], [0.0, 0.0]])
def test_bad_weights_raise_config_error(weights):
    with pytest.raises(ConfigError, match="data.sources"):
        mix_sources([_records("a", 2), _records("b", 2)], weights, total=4, seed=0)


def test_split_95_5():
    # 100 records at 0.05 -> round(5) validation, 95 train, disjoint, deterministic.
    records = _records("a", 100)
    train, val = split_train_val(records, 0.05, seed=0)
    assert (len(train), len(val)) == (95, 5)
    assert {r["i"] for r in train}.isdisjoint({r["i"] for r in val})
    assert split_train_val(records, 0.05, seed=0) == (train, val)
    # 10 records at 0.05 -> round(0.5) = 0, but a positive fraction keeps at least one.
    assert [len(x) for x in split_train_val(_records("a", 10), 0.05, seed=0)] == [9, 1]
    assert [len(x) for x in split_train_val(_records("a", 10), 0.0, seed=0)] == [10, 0]
    with pytest.raises(ConfigError, match="val_fraction"):
        split_train_val(records, 1.0, seed=0)


def test_in_domain_plus_general_blend_from_config_specs(tmp_path):
    # Two sources as a data config lists them (configs/data/ice_grt_blend.yaml shape): an in-domain
    # generic JSONL (field mapping) and an Alpaca-style general file, blended 1:3 into 16 records.
    in_domain = tmp_path / "ads.jsonl"
    in_domain.write_text("".join(json.dumps({"q": f"Is ad {i} allowed?", "a": "No."}) + "\n" for i in range(10)))
    general = tmp_path / "alpaca.jsonl"
    general.write_text("".join(json.dumps({"instruction": f"Say {i}", "input": "", "output": str(i)}) + "\n"
                               for i in range(20)))
    specs = [
        {"path": str(in_domain), "adapter": "generic", "fields": {"prompt": "q", "response": "a"}, "weight": 1.0},
        {"path": str(general), "adapter": "alpaca", "weight": 3.0},
    ]
    groups = [load_source(spec, kind="conversation") for spec in specs]
    out = mix_sources(groups, [s["weight"] for s in specs], total=16, seed=0)
    # 16 * 1/4 = 4 in-domain, 16 * 3/4 = 12 general.
    assert Counter(r["source"] for r in out) == {"generic": 4, "alpaca": 12}
