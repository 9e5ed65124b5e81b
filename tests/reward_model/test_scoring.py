import json
import math
import statistics

import pytest
import torch

from rlhf.core.errors import DataError
from rlhf.data.preference_datamodule import PreferenceCollator
from rlhf.reward_model.module import RewardModule
from rlhf.reward_model.scoring import last_token_index, load_reward_model

TINY = {"source": "tiny", "tokenizer": "embedded:smollm2-135m", "dtype": "float32",
        "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128, "seed": 0}}
PROMPTS = [[{"role": "user", "content": "What is the capital of France?"}],
           "Tell me a joke about cats.",
           [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "How are you today?"}]]
RESPONSES = ["Paris.", "Why did the cat sit on the computer? To keep an eye on the mouse.", "Fine, thanks."]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A LoRA RM whose adapter and head are non-trivial, exported; stats measured on a reference loader."""
    module = RewardModule(model=TINY, peft={"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0},
                          max_length=48, min_prompt_tokens=8)
    module.configure_model()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in module.model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    module.model.eval()
    tok = module.tokenizer
    seqs = [tok(t, add_special_tokens=False)["input_ids"] for t in ("one two three", "four five", "six")]
    loader = [PreferenceCollator(tok.pad_token_id)([{"input_ids": seqs, "pairs": [(0, 1)], "margins": []}])]
    module.reward_stats = module.reference_stats(loader)
    with torch.no_grad():
        ref_scores = [float(module(torch.tensor([s]), torch.ones(1, len(s), dtype=torch.long))) for s in seqs]
    out = tmp_path_factory.mktemp("rm") / "model"
    module.export(out)
    return module, out, ref_scores


def test_last_token_index_both_sides():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert last_token_index(mask).tolist() == [2, 4, 4]
    with pytest.raises(ValueError, match="no real token"):
        last_token_index(torch.tensor([[0, 0]]))


def test_export_writes_merged_folder_with_stats(exported):
    module, out, ref_scores = exported
    stats = json.loads((out / "merged" / "reward_stats.json").read_text())
    # independent moments of the three reference scores (sample std, n - 1)
    assert stats["mean"] == pytest.approx(statistics.mean(ref_scores), abs=1e-5)
    assert stats["std"] == pytest.approx(statistics.stdev(ref_scores), abs=1e-5)
    assert stats["n"] == 3
    assert {k: stats[k] for k in ("kind", "template", "max_length", "min_prompt_tokens")} == \
        {"kind": "preference", "template": "chatml", "max_length": 48, "min_prompt_tokens": 8}
    assert (out / "merged" / "model.safetensors").is_file() and (out / "adapter" / "reward_stats.json").is_file()
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no staging left behind


def test_loaded_scorer_matches_module_and_prob_is_sigmoid(exported):
    module, out, _ = exported
    scorer = load_reward_model(out / "merged", batch_size=2)
    assert scorer.kind == "preference" and set(scorer.stats) == {"mean", "std"}
    logits = scorer.score(PROMPTS, RESPONSES)
    with torch.no_grad():
        for prompt, response, z in zip(PROMPTS, RESPONSES, logits):
            ids = scorer.encode(prompt, response)
            direct = float(module(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)))
            assert float(z) == pytest.approx(direct, abs=1e-5)
    probs = load_reward_model(out, output="prob").score(PROMPTS, RESPONSES)  # parent folder resolves merged/
    for z, p in zip(logits.tolist(), probs.tolist()):
        assert p == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-6)


def test_scorer_is_batch_invariant(exported):
    _, out, _ = exported
    batched = load_reward_model(out, batch_size=3).score(PROMPTS, RESPONSES)
    single = load_reward_model(out, batch_size=1).score(PROMPTS, RESPONSES)
    assert torch.allclose(batched, single, atol=1e-5, rtol=0)


def test_scorer_truncates_prompt_from_the_left_keeping_the_response(exported):
    _, out, _ = exported
    scorer = load_reward_model(out)
    response = "The answer is four."
    long_prompt = "word " * 200 + "final question?"
    ids = scorer.encode(long_prompt, response)
    tok = scorer.tokenizer
    response_ids = tok(response + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert len(ids) == 48  # max_length
    assert ids[-len(response_ids):] == response_ids  # response intact at the end
    # the kept prompt is the tail of the rendered prompt (cut from its beginning)
    prompt_ids = tok(scorer.template.render_prompt([{"role": "user", "content": long_prompt}]),
                     add_special_tokens=False)["input_ids"]
    assert ids[: 48 - len(response_ids)] == prompt_ids[-(48 - len(response_ids)):]


def test_missing_stats_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(DataError, match="not a reward model: no reward_stats.json"):
        load_reward_model(tmp_path)
