"""configs/annotator/*.yaml instantiate the classes they name, through build_annotator as the pipeline does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlhf.annotators import Annotator, build_annotator
from rlhf.core.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "annotator"
PROMPT = [{"role": "user", "content": "Name a fruit."}]


def load(name: str, **overrides):
    """The group file with the keys a run fills in (seed comes from the root config)."""
    cfg = OmegaConf.merge(OmegaConf.create({"seed": 5}), {"annotator": OmegaConf.load(CONFIG_DIR / f"{name}.yaml")},
                          {"annotator": overrides})
    return OmegaConf.to_container(cfg, resolve=True)["annotator"]


def test_every_config_names_a_target():
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert names == ["human", "llm_judge", "reward_model", "simulated"]
    for name in names:
        assert "_target_" in OmegaConf.load(CONFIG_DIR / f"{name}.yaml")


def test_simulated_config():
    from rlhf.annotators.simulated import ICE_GRT_DERIVED_WEIGHTS, SimulatedAnnotator

    annotator = build_annotator(load("simulated", temperature=0.25))
    assert isinstance(annotator, SimulatedAnnotator) and isinstance(annotator, Annotator)
    assert annotator.temperature == 0.25
    assert annotator.weights == ICE_GRT_DERIVED_WEIGHTS
    assert annotator.target_words == (20, 80) and annotator.relevance_words == 48


def test_human_config(tmp_path):
    from rlhf.annotators.human import export_labelling_file

    path = export_labelling_file(tmp_path / "l.jsonl", [{"prompt_id": "p", "prompt": PROMPT, "responses": ["a", "b"]}])
    record = json.loads(path.read_text())
    record["ranks"] = [2, 1]
    path.write_text(json.dumps(record) + "\n")
    annotator = build_annotator(load("human", path=str(path)))
    assert annotator.rank(PROMPT, ["a", "b"]) == [1, 0]


def test_llm_judge_config():
    annotator = build_annotator(load("llm_judge", base_url="http://127.0.0.1:9/v1", model="judge-1"))
    assert annotator.judge.base_url == "http://127.0.0.1:9/v1" and annotator.judge.model == "judge-1"
    assert annotator.judge.swap_positions is True and annotator.judge.api_key_env == "OPENAI_API_KEY"


def test_reward_model_config(monkeypatch):
    # A stand-in rlhf.reward_model.scoring module: the real one loads transformers, which this test does not need.
    import sys
    import types

    seen = {}

    class FakeScorer:
        output = "logit"

        def score(self, prompts, responses):
            return [float(len(r)) for r in responses]

    def fake_load(path, output="logit", device="cpu", batch_size=16):
        seen.update(path=path, output=output, device=device, batch_size=batch_size)
        return FakeScorer()

    monkeypatch.setitem(sys.modules, "rlhf.reward_model.scoring", types.SimpleNamespace(load_reward_model=fake_load))
    annotator = build_annotator(load("reward_model", path="/models/rm"))
    assert seen == {"path": "/models/rm", "output": "logit", "device": "cpu", "batch_size": 16}
    assert annotator.rank(PROMPT, ["a", "abc"]) == [1, 0]


def test_kind_mapping_and_unknown_kind():
    from rlhf.annotators.simulated import SimulatedAnnotator

    assert isinstance(build_annotator({"kind": "simulated", "temperature": 0.0}), SimulatedAnnotator)
    with pytest.raises(ConfigError, match="unknown annotator kind 'oracle'"):
        build_annotator({"kind": "oracle"})


def test_missing_required_key_is_reported():
    with pytest.raises(Exception, match="path"):
        build_annotator(OmegaConf.load(CONFIG_DIR / "human.yaml"))
