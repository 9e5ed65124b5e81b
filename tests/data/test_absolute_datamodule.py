import json

import pytest
import torch

from rlhf.core.models import load_backbone_tokenizer
from rlhf.data.absolute_datamodule import AbsoluteDataModule
from rlhf.data.paraphrase import ParaphraseAugmenter
from rlhf.core.errors import ConfigError, DataError

TINY = {"source": "tiny", "tokenizer": "embedded:smollm2-135m"}


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def module(path, **kw):
    args = {"tokenizer": load_backbone_tokenizer(TINY), "sources": [{"path": str(path)}], "max_length": 64, "min_prompt_tokens": 8,
            "val_fraction": 0.0, "batch_size": 16}
    dm = AbsoluteDataModule(**{**args, **kw})
    dm.setup()
    return dm


def labels(quality, helpfulness=1.0, creativity=0.5):
    return {"violence": 0.0, "creativity": creativity, "helpfulness": helpfulness, "humor": 0.0,
            "toxicity": 0.0, "quality": quality}


def test_label_aggregation_with_thesis_weights(tmp_path):
    path = write(tmp_path / "a.jsonl", [
        {"prompt": "q1", "response": "r1", "labels": labels(1.0)},
        {"prompt": "q2", "response": "r2", "labels": {"helpfulness": 1.0}},  # no quality: dropped
        {"prompt": [{"role": "user", "content": "q3"}], "response": "r3", "label": 0.3},
    ])
    # w2: 0.15·0.5 + 0.25·1 + 0.40·1 = 0.725;  w3: 0.15·0.5 + 0.35·1 + 0.40·1 = 0.825;  quality: 1.0
    for weights, expected in (("w2", 0.725), ("w3", 0.825), ("quality", 1.0)):
        scores = [r["score"] for r in module(path, label_weights=weights).train_records]
        assert scores == pytest.approx([expected, 0.3]), weights


def test_imbalance_variant_weights_the_low_bucket(tmp_path):
    scores = [0.2, 0.3] + [0.5, 0.6, 0.7, 0.8, 0.6, 0.5] + [0.95, 1.0]
    path = write(tmp_path / "a.jsonl", [{"prompt": f"q{i}", "response": f"r{i}", "label": s}
                                        for i, s in enumerate(scores)])
    dm = module(path, variant="wgt_s_05")
    # W = N / N_low = 10 / 2 = 5; strength 0.5 -> weight 2.5 on low, 1 elsewhere
    weights = {r["score"]: r["weight"] for r in dm.train_records}
    assert weights[0.2] == pytest.approx(2.5) and weights[0.3] == pytest.approx(2.5)
    assert weights[0.6] == 1.0 and weights[0.95] == 1.0
    batch = next(iter(torch.utils.data.DataLoader(dm.train_set, batch_size=10, collate_fn=dm.train_dataloader().collate_fn)))
    assert sorted(batch["weight"].tolist()) == [1.0] * 8 + [2.5, 2.5]
    assert sorted(batch["target"].tolist()) == pytest.approx(sorted(scores))
    # over_s duplicates the two low records: 12 records
    assert len(module(path, variant="over_s").train_set) == 12


class HalfSimilar:
    def cosine(self, a, b):
        return torch.full((len(a),), 0.5)


def test_paraphrase_augmentation_hook_adds_adjusted_copies(tmp_path):
    path = write(tmp_path / "a.jsonl", [{"prompt": "q", "response": "bad answer", "label": 0.2},
                                        {"prompt": "q", "response": "fine answer", "label": 0.7}])
    augmenter = ParaphraseAugmenter(lambda prompt, response: "short answer", encoder=HalfSimilar(), alpha=0.5)
    dm = module(path, variant="augment", augmenter=augmenter)
    # only the low record is paraphrased: 0.2 · (1 - 0.5 · (1 - 0.5)) = 0.15
    added = [r for r in dm.train_records if r["is_augmented"]]
    assert len(added) == 1 and added[0]["response"] == "short answer"
    assert added[0]["score"] == pytest.approx(0.15)
    with pytest.raises(ConfigError, match="augmenter"):
        module(path, variant="augment")


def test_validation_is_untouched_by_the_variant(tmp_path):
    path = write(tmp_path / "a.jsonl", [{"prompt": f"q{i}", "response": "r", "label": 0.1 * (i % 10)}
                                        for i in range(20)])
    dm = module(path, val_fraction=0.1, variant="over_s+wgt_1_4")
    assert len(dm.val_set) == 2 and all(v["weight"] == 1.0 for v in dm.val_set)


def test_bad_records_name_file_and_line(tmp_path):
    path = write(tmp_path / "bad.jsonl", [{"prompt": "q", "response": "r", "label": 0.5},
                                          {"prompt": "q", "response": "r", "label": 1.5}])
    with pytest.raises(DataError, match=r"bad.jsonl, record 2: 'label' is 1.5"):
        module(path)
    path = write(tmp_path / "nolabel.jsonl", [{"prompt": "q", "response": "r"}])
    with pytest.raises(DataError, match="need 'labels'"):
        module(path)
    path = write(tmp_path / "badlabel.jsonl", [{"prompt": "q", "response": "r", "labels": {"quality": 7}}])
    with pytest.raises(DataError, match=r"badlabel.jsonl, record 1: .*quality"):
        module(path)
