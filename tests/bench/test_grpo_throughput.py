"""bench/grpo_throughput.py without training: its arguments, the worker command lines, the paired
ratios, and (`--dry-run`) the resolved settings of both sides, which must describe the same GRPO
step — so a change to configs/algorithm/grpo.yaml or to the stage defaults that TRL is not given
too shows up here, not as a quietly unfair benchmark."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scripts import load_bench_script  # noqa: E402



@pytest.fixture(scope="module")
def bench():
    return load_bench_script("grpo_throughput.py")


def test_defaults_are_the_benchmark_settings(bench):
    args = bench.parse([])
    assert (args.threads, args.warmup, args.steps, args.runs) == (1, 1, 2, 5)
    assert args.new_tokens == [32, 64] and args.systems == ["ours", "trl"] and args.model == "embedded"
    assert (args.prompts, args.generations) == (16, 4) and not args.dry_run and args.out is None


@pytest.mark.parametrize("argv", [["--systems", "ours,floor"], ["--new-tokens", "32,x"], ["--new-tokens", "0"],
                                  ["--steps", "0"], ["--generations", "1"], ["--model", "hub"]])
def test_bad_arguments_stop_before_anything_runs(bench, argv):
    with pytest.raises(SystemExit):
        bench.parse(argv)


def test_jobs_interleave_settings_and_each_worker_gets_one_setting(bench):
    args = bench.parse(["--model", "tiny", "--new-tokens", "8,16", "--warmup", "0", "--steps", "3"])
    jobs = bench.labelled_jobs(args)
    assert [label for label, _ in jobs] == ["ours@8", "trl@8", "ours@16", "trl@16"]
    for label, argv in jobs:
        worker = bench.parse(argv)
        assert worker.worker == label.split("@")[0] and worker.new_tokens == [int(label.split("@")[1])]
        assert (worker.model, worker.warmup, worker.steps, worker.prompts, worker.generations) == ("tiny", 0, 3, 16, 4)


def test_paired_ratios_are_per_run_with_median_min_max(bench):
    runs = {"ours@8": [{"samples_per_s": 4.0, "tokens_per_s": 40.0, "step_s": 1.0, "peak_rss_mb": 100.0},
                       {"samples_per_s": 6.0, "tokens_per_s": 60.0, "step_s": 2.0, "peak_rss_mb": 100.0},
                       {"samples_per_s": 3.0, "tokens_per_s": 30.0, "step_s": 3.0, "peak_rss_mb": 100.0}],
            "trl@8": [{"samples_per_s": 2.0, "tokens_per_s": 20.0, "step_s": 2.0, "peak_rss_mb": 200.0}] * 3}
    ratios = bench.paired_ratios(runs, [8, 16])
    assert set(ratios) == {"8"}  # no pair at 16
    assert ratios["8"]["samples_per_s_ours_vs_trl"] == {"median": 2.0, "min": 1.5, "max": 3.0, "each": [2.0, 3.0, 1.5]}
    assert ratios["8"]["step_s_ours_vs_trl"]["median"] == 1.0
    assert ratios["8"]["peak_rss_mb_ours_vs_trl"]["each"] == [0.5, 0.5, 0.5]


def test_trl_reward_is_our_word_count_reward(bench):
    from rlhf.rewards.word_count import WordCountReward

    texts = ["", "Eee eel", "the tree", "no match here? yes: E", "ÉE e"]
    ours = WordCountReward("e", whole_word=False).score([[]] * len(texts), texts).tolist()
    assert bench.letter_e_reward(None, texts) == ours


def test_dry_run_describes_the_same_grpo_step_on_both_sides(bench, tmp_path, capsys):
    pytest.importorskip("trl")  # the `bench` extra
    out = tmp_path / "dry.json"
    report = bench.main(["--dry-run", "--model", "tiny", "--new-tokens", "8,16", "--warmup", "1", "--steps", "2",
                         "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(capsys.readouterr().out) == json.loads(json.dumps(report))
    dry = report["dry_run"]
    assert dry["jobs"] == ["ours@8", "trl@8", "ours@16", "trl@16"]
    lora = dry["lora"]
    for n in ("8", "16"):
        ours, trl = dry["ours"][n], dry["trl"][n]
        assert "algorithm=grpo" in ours["overrides"] and ours["model"]["source"] == "tiny"
        assert ours["algorithm"]["name"] == "grpo" and ours["critic"]["kind"] == "none"
        rows = ours["data_batch_size"] * ours["rollout"]["n_samples_per_prompt"]
        assert rows == 64 == trl["per_device_train_batch_size"] == trl["generation_batch_size"]
        assert trl["gradient_accumulation_steps"] == trl["steps_per_generation"] == 1
        assert ours["update"]["minibatch_size"] is None  # ours: one optimizer step over all 64 rows too
        assert ours["rollout"]["n_samples_per_prompt"] == trl["num_generations"] == 4
        assert ours["rollout"]["max_new_tokens"] == trl["max_completion_length"] == int(n)
        assert ours["update"]["epochs"] == trl["num_iterations"] == 1
        assert ours["max_steps"] == trl["max_steps"] == 3
        assert ours["kl"] == {**ours["kl"], "placement": "loss", "estimator": "k3", "kind": "fixed"}
        assert ours["kl"]["init_beta"] == trl["beta"] == 0.04
        assert ours["update"]["clip_eps"] == trl["epsilon"] and ours["algorithm"]["clip_high"] is None
        assert ours["algorithm"]["loss_aggregation"] == "seq_mean_token_mean" and trl["loss_type"] == "grpo"
        assert ours["algorithm"]["scale_std"] and trl["scale_rewards"] == "group"
        assert ours["rollout"]["temperature"] == trl["temperature"] and ours["rollout"]["top_p"] == trl["top_p"]
        assert ours["rollout"]["top_k"] == trl["top_k"] == 0
        optim = ours["actor_optim"]
        assert optim["lr"] == trl["learning_rate"] and optim["betas"] == [trl["adam_beta1"], trl["adam_beta2"]]
        assert optim["eps"] == trl["adam_epsilon"] and optim["weight_decay"] == trl["weight_decay"]
        assert optim["grad_clip"] == trl["max_grad_norm"]
        assert optim["schedule"] == trl["lr_scheduler_type"] == "constant"
        peft = ours["peft"]
        assert peft["enabled"] and (peft["r"], peft["alpha"], peft["dropout"], peft["target_modules"]) == (
            lora["r"], lora["lora_alpha"], lora["lora_dropout"], lora["target_modules"])
        assert ours["reward_fn"] == {**ours["reward_fn"], "kind": "word_count", "word": "e", "whole_word": False,
                                     "case_sensitive": False}
        assert not trl["use_vllm"] and trl["use_cpu"] and not trl["bf16"] and not trl["activation_checkpointing"]
        assert trl["report_to"] == [] and not trl["log_completions"] and trl["disable_dropout"]


def test_trl_gets_our_prompts_token_for_token_in_our_order(bench):
    from rlhf.core.models import load_backbone_tokenizer

    tokenizer = load_backbone_tokenizer({"source": "tiny", "tokenizer": "embedded:smollm2-135m", "dtype": "float32"})
    args = bench.parse(["--model", "tiny", "--worker", "trl", "--new-tokens", "8"])
    records = bench.our_prompt_records(args, tokenizer, 8)
    assert len(records) == args.prompts * (args.warmup + args.steps)
    texts = bench.prompt_texts(tokenizer, records)
    assert len(set(texts)) == len(texts) and all(t.endswith("<|im_start|>assistant\n") for t in texts)
    assert bench.prompt_ids_match(tokenizer, texts, records)
    from rlhf.data.demo_task import demo_prompts

    ids = [r["id"] for r in demo_prompts("rl", len(records), 0)]
    assert sorted(r["id"] for r in records) == sorted(ids) and [r["id"] for r in records] != ids  # our shuffle


def test_hh_prompt_set_is_the_dialogue_before_the_last_assistant_turn(bench, tmp_path, shared_data_dir):
    from rlhf.core.models import load_backbone_tokenizer

    tokenizer = load_backbone_tokenizer({"source": "tiny", "tokenizer": "embedded:smollm2-135m", "dtype": "float32"})
    stats = bench.write_hh_prompts(str(shared_data_dir), tmp_path / "hh.jsonl", 12, 256, tokenizer)
    rows = [json.loads(line) for line in (tmp_path / "hh.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(r["prompt"][-1]["role"] == "user" for r in rows)
    assert stats["max_tokens_seen"] <= 256 and stats["median_tokens"] > 40
    args = bench.parse(["--model", "tiny", "--worker", "ours", "--new-tokens", "8", "--prompts", "4", "--steps", "2",
                        "--prompts-file", str(tmp_path / "hh.jsonl")])
    records = bench.our_prompt_records(args, tokenizer, 8)
    assert bench.prompt_ids_match(tokenizer, bench.prompt_texts(tokenizer, records), records)
