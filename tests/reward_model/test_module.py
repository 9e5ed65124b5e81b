import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlhf.data.collate import length_mask, pad_sequences
from rlhf.data.preference_datamodule import PreferenceCollator
from rlhf.core.errors import ConfigError
from rlhf.reward_model.module import RewardModule
from rlhf.reward_model.scoring import split_head

REPO = Path(__file__).resolve().parents[2]
TINY = {"source": "tiny", "tokenizer": "embedded:smollm2-135m", "dtype": "float32",
        "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128, "seed": 0}}


def make_module(kind="preference", loss=None, peft=None):
    module = RewardModule(model=TINY, peft=peft, kind=kind, loss=loss, max_length=64, min_prompt_tokens=8)
    module.configure_model()
    module.model.eval()
    return module


@pytest.fixture(scope="module")
def module():
    return make_module()


@pytest.fixture(scope="module")
def seqs(module):
    tok = module.tokenizer
    texts = ["Hello there, how are you?", "A much longer sentence that has quite a few more tokens in it than others.",
             "Short", "Numbers 1 2 3 4 5 6 7", "Another reply about the weather today"]
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def scores_of(module, seqs, side):
    ids = pad_sequences(seqs, module.tokenizer.pad_token_id, side)
    mask = length_mask([len(s) for s in seqs], ids.size(1), side)
    with torch.no_grad():
        return module(ids, mask)


def test_score_is_head_of_last_real_token(module, seqs):
    # Independent route: the body on one unpadded sequence, the head on its last hidden state.
    body, head = split_head(module.model)
    with torch.no_grad():
        hidden = body(input_ids=torch.tensor([seqs[1]])).last_hidden_state
        expected = head(hidden[0, -1]).item()
    assert scores_of(module, seqs, "right")[1].item() == pytest.approx(expected, abs=1e-5)


def test_padding_side_companions_and_batch_size_do_not_move_scores(module, seqs):
    right = scores_of(module, seqs, "right")
    left = scores_of(module, seqs, "left")
    singles = torch.cat([scores_of(module, [s], "right") for s in seqs])
    # different companions: seq 0 next to the longest vs next to the shortest, plus much extra padding
    with_long = scores_of(module, [seqs[0], seqs[1] * 3], "left")[0]
    with_short = scores_of(module, [seqs[2], seqs[0]], "right")[1]
    assert torch.allclose(right, left, atol=1e-5, rtol=0)
    assert torch.allclose(right, singles, atol=1e-5, rtol=0)
    assert abs(with_long - singles[0]) < 1e-5 and abs(with_short - singles[0]) < 1e-5
    # the scores are not all the same number (a constant head would pass the checks above)
    assert right.std() > 1e-4


def kway_batch(module, seqs):
    # group 0: four replies ranked 0..3 -> all six pairs; group 1: two replies ranked 0, 1
    groups = [{"input_ids": seqs[:4], "pairs": [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)], "margins": []},
              {"input_ids": seqs[4:] + seqs[:1], "pairs": [(0, 1)], "margins": []}]
    return PreferenceCollator(module.tokenizer.pad_token_id)(groups)


def test_kway_one_forward_per_response_and_loss_equals_expanded_pairs(module, seqs):
    batch = kway_batch(module, seqs)
    body, _ = split_head(module.model)
    rows = []
    handle = body.register_forward_hook(lambda mod, args, output: rows.append(output.last_hidden_state.size(0)))
    with torch.no_grad():
        loss, scores, _ = module._step(batch)
    handle.remove()
    assert rows == [6]  # one body call, six rows: 4 + 2 responses, not 2 x 7 pair members

    s = [float(v) for v in scores_of(module, seqs[:4], "right")] + \
        [float(v) for v in scores_of(module, [seqs[4], seqs[0]], "right")]

    def nll(a, b):  # -log σ(a - b) = log(1 + exp(b - a))
        return math.log1p(math.exp(b - a))

    group0 = [nll(s[0], s[1]), nll(s[0], s[2]), nll(s[0], s[3]), nll(s[1], s[2]), nll(s[1], s[3]), nll(s[2], s[3])]
    expected = (sum(group0) / 6 + nll(s[4], s[5])) / 2  # mean within each prompt, then over prompts
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_margin_ranking_loss_and_per_pair_margin(seqs):
    module = make_module(loss={"name": "margin_ranking", "margin": 1.0, "group_mean": False})
    batch = kway_batch(module, seqs)
    s = [float(v) for v in scores_of(module, seqs[:4], "right")] + \
        [float(v) for v in scores_of(module, [seqs[4], seqs[0]], "right")]
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3), (4, 5)]
    with torch.no_grad():
        loss, _, _ = module._step(batch)
        # flat mean of max(0, 1 - r_w + r_l) over the 7 pairs (ICE-GRT, no grouping)
        assert loss.item() == pytest.approx(sum(max(0.0, 1 - s[c] + s[r]) for c, r in pairs) / 7, abs=1e-5)
        batch["pair_margin"] = torch.tensor([3.0, 2.0, 1.0, 0.0, 0.0, 0.0, 5.0])
        loss, _, _ = module._step(batch)
    margins = [3.0, 2.0, 1.0, 0.0, 0.0, 0.0, 5.0]
    expected = sum(max(0.0, m - s[c] + s[r]) for (c, r), m in zip(pairs, margins)) / 7
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_absolute_logistic_loss_with_weights(seqs):
    module = make_module(kind="absolute", loss={"name": "logistic"})
    ids = pad_sequences(seqs[:2], module.tokenizer.pad_token_id)
    batch = {"input_ids": ids, "attention_mask": length_mask([len(s) for s in seqs[:2]], ids.size(1)),
             "target": torch.tensor([0.25, 1.0]), "weight": torch.tensor([2.0, 1.0])}
    with torch.no_grad():
        loss, scores, _ = module._step(batch)
    z = [float(v) for v in scores]

    def bce(zi, y):  # -[y log σ(z) + (1 - y) log(1 - σ(z))]
        p = 1 / (1 + math.exp(-zi))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    assert loss.item() == pytest.approx((2.0 * bce(z[0], 0.25) + 1.0 * bce(z[1], 1.0)) / 2, abs=1e-6)


def test_loss_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="stage.module.loss.name"):
        RewardModule(model=TINY, kind="preference", loss={"name": "logistic"})  # an absolute loss
    with pytest.raises(ConfigError, match="center_coef"):
        RewardModule(model=TINY, kind="absolute", loss={"name": "mse", "center_coef": 0.1})
    with pytest.raises(ConfigError, match="stage.module.kind"):
        RewardModule(model=TINY, kind="ranking")


@pytest.mark.slow
def test_train_cli_runs_end_to_end_on_a_pairs_fixture(tmp_path):
    import json

    from rlhf.reward_model.scoring import load_reward_model

    pairs = tmp_path / "pairs.jsonl"
    lines = [{"prompt": f"Question {i}: say something kind.", "chosen": f"Happy to help, friend {i}.",
              "rejected": f"Go away {i}."} for i in range(12)]
    pairs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "rlhf.train", "stage=reward", "model=tiny", "data=pairs_jsonl",
           f"data.sources.0.path={pairs}", "data.batch_size=4", "data.max_length=64", "data.min_prompt_tokens=8",
           "trainer=debug", "logger=csv", f"hydra.run.dir={run_dir}"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((run_dir / "model" / "merged" / "reward_stats.json").read_text())
    # 12 pairs, val_fraction 0.1 -> round(1.2) = 1 validation pair -> 2 reference responses
    assert stats["n"] == 2 and stats["kind"] == "preference" and stats["max_length"] == 64
    scorer = load_reward_model(run_dir / "model")
    assert scorer.score(["Question 0: say something kind."], ["Happy to help."]).shape == (1,)


@pytest.mark.slow
@pytest.mark.distributed
def test_packed_rm_on_two_fsdp2_processes_matches_one(tmp_path):
    """Shared-prefix packing under FSDP2 on 2 CPU processes (gloo): same loss curve as 1 process.

    8 pairs, batch 8 = 2 ranks x 4, so each step is the whole set; one pair per group makes the mean
    of the per-rank group means the global group mean. LoRA dropout 0: no RNG stream differs.
    """
    import csv
    import json

    pairs = tmp_path / "pairs.jsonl"
    lines = [{"prompt": f"Question {i}: say something{' really' * (i % 3)} kind.",
              "chosen": f"Happy to help, friend {i}.", "rejected": f"Go away {i}, {'now ' * (i % 4)}."}
             for i in range(8)]
    pairs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    common = [sys.executable, "-m", "rlhf.train", "stage=reward", "model=tiny", "data=pairs_jsonl",
              f"data.sources.0.path={pairs}", "data.val_fraction=0", "data.max_length=64", "data.min_prompt_tokens=8",
              "trainer=debug", "trainer.max_steps=4", "trainer.max_epochs=4", "peft.dropout=0.0",
              "stage.module.optim.lr=1.0e-2", "stage.module.optim.warmup_ratio=0", "logger=csv", "callbacks=none"]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    runs = {"single": ["strategy=single", "data.batch_size=8"],
            "fsdp2": ["strategy=fsdp2", "trainer.devices=2", "data.batch_size=4"]}
    losses = {}
    for name, extra in runs.items():
        result = subprocess.run([*common, *extra, f"hydra.run.dir={tmp_path / name}"], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        (metrics,) = (tmp_path / name).glob("csv/version_*/metrics.csv")
        with metrics.open() as handle:
            losses[name] = [float(r["train/epoch_loss"]) for r in csv.DictReader(handle) if r["train/epoch_loss"]]
    assert len(losses["single"]) == 4 and losses["single"][-1] < losses["single"][0] - 0.05
    assert losses["fsdp2"] == pytest.approx(losses["single"], abs=1e-4)
    # the sharded run exports the same reward model (gathered from the shards)
    from rlhf.reward_model.scoring import load_reward_model

    prompts, replies = [line["prompt"] for line in lines], [line["chosen"] for line in lines]
    single, sharded = (load_reward_model(tmp_path / name / "model").score(prompts, replies) for name in runs)
    assert single.std() > 1e-3 and torch.allclose(single, sharded, atol=1e-3, rtol=0)


@pytest.mark.parametrize("stage,data,loss_override,expected", [
    ("reward", "hh_rlhf_pairs", None, {"name": "pairwise_logistic", "margin": 0.0, "center_coef": 0.0,
                                       "group_mean": True}),
    ("reward", "oasst_pairs", "margin_ranking", {"name": "margin_ranking", "margin": 1.0, "group_mean": False}),
    ("reward", "pairs_jsonl", None, None),
    ("reward_absolute", "absolute_jsonl", "mse", {"name": "mse", "penalty_coef": 0.02}),
])
def test_stage_and_data_configs_compose(stage, data, loss_override, expected):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    overrides = [f"stage={stage}", f"data={data}", "model=tiny", "logger=none"]
    if loss_override:
        overrides.append(f"reward_loss@stage.module.loss={loss_override}")
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    module = cfg.stage.module
    assert module._target_ == "rlhf.reward_model.module.RewardModule"
    assert module.kind == ("absolute" if stage == "reward_absolute" else "preference")
    if expected is not None:
        assert OmegaConf.to_container(module.loss) == expected
    assert module.max_length == cfg.data.max_length == 2048 and module.min_prompt_tokens == 256
    assert cfg.data.val_fraction == 0.1


def shared_prompt_groups(module):
    """Two prompts, replies of different lengths; group 0 has three replies (one a prefix of another)."""
    tok = module.tokenizer

    def ids(text):
        return tok(text, add_special_tokens=False)["input_ids"]
    prompt0, prompt1 = ids("<|im_start|>user\nWhat should I cook tonight?<|im_end|>\n"), ids("Q: name a colour.")
    replies0 = [ids(" Pasta with tomatoes."), ids(" Pasta"), ids(" Soup, since it is cold outside today.")]
    replies1 = [ids(" Blue"), ids(" Red, like a fire engine")]
    prompt2, replies2 = ids("Q: name a fruit."), [ids(" Apple"), ids(" Pear")]
    return [{"input_ids": [prompt0 + r for r in replies0], "pairs": [(0, 1), (0, 2), (2, 1)], "margins": []},
            {"input_ids": [prompt1 + r for r in replies1], "pairs": [(1, 0)], "margins": []},
            {"input_ids": [prompt2 + r for r in replies2], "pairs": [(0, 1)], "margins": []}]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_shared_prefix_packing_gives_the_padded_scores_loss_and_gradients(attention):
    module = make_module(peft={"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0})
    module.model.set_attn_implementation(attention)
    groups = shared_prompt_groups(module)
    pad = module.tokenizer.pad_token_id
    packed = PreferenceCollator(pad, shared_prefix=True)(groups)
    padded = PreferenceCollator(pad, padding_side="left")(groups)
    # the two short groups share a row, so a token attending across groups would show
    assert packed["input_ids"].size(0) == 2 and padded["input_ids"].size(0) == 7
    assert packed["document_ids"].max() == 1
    results = []
    for batch in (packed, padded):
        module.model.zero_grad()
        loss, scores, _ = module._step(batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in module.model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), scores.detach(), grads))
    (loss_a, scores_a, grads_a), (loss_b, scores_b, grads_b) = results
    assert scores_a.std() > 1e-4  # distinct scores, so a mix-up of rows would show
    assert torch.allclose(scores_a, scores_b, atol=1e-5, rtol=0)
    assert loss_a.item() == pytest.approx(loss_b.item(), abs=1e-6)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 0
    for name, grad in grads_a.items():
        assert torch.allclose(grad, grads_b[name], atol=1e-6, rtol=1e-4), name


def test_shared_prefix_packing_refuses_an_attention_without_4d_masks(monkeypatch):
    module = make_module()
    batch = PreferenceCollator(module.tokenizer.pad_token_id, shared_prefix=True)(shared_prompt_groups(module))
    body, _ = split_head(module.model)
    monkeypatch.setattr(body.config, "_attn_implementation", "flash_attention_2")
    with pytest.raises(ConfigError, match="data.shared_prefix"):
        module._step(batch)
