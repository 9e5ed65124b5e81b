"""PPO step time, samples/s and peak RSS: our PPOModule vs TRL's PPOTrainer vs the floor.

Same settings for every system (bench/ppo_settings.py): SmolLM2-135M fp32 on CPU, 16 prompts,
32 new tokens, 4 PPO epochs over one minibatch, LoRA r16/a32 on all linear layers, reference =
the actor with its adapter disabled, and a closed-form reward (count of the letter "e"). Critic:
TRL's PPOTrainer only has a separate full-parameter value model; ours is run with the same
separate critic and, by `--critic`, with a value head on the actor. Each (run, system) is a fresh
subprocess; runs are interleaved so a change in machine load hits every system alike; each ratio is
computed run by run and quoted as the median with its range (after `--warmup` untimed steps).

    .venv/bin/python bench/ppo_throughput.py                  # CPU comparison, 5 paired runs
    .venv/bin/python bench/ppo_throughput.py --quick          # tiny model smoke run (< 60 s idle)
    .venv/bin/python bench/ppo_throughput.py --scaling        # step time vs batch and response length
    .venv/bin/python bench/ppo_throughput.py --gpu --model-source HuggingFaceTB/SmolLM2-360M-Instruct
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from harness import (MIN_RUNS, MIN_WARMUP, interleaved_runs, median_summary, multi_worker_main, paired_ratios,
                     parse_quick, peak_gpu_mb, peak_rss_mb, run_count_note, run_worker, steady_step_s)
from ppo_settings import (LORA, add_settings_arguments, model_overrides, model_spec, prompt_token_ids, prompts_needed,
                          settings_argv)

SYSTEMS = ("floor", "ours", "trl")
CRITIC_KINDS = ("separate", "value_head")
# A variant is a critic kind with optional ":flags": ":recompute" = old log-probs from a second forward
# (rollout.logprobs_from_generation=false, the pre-2026-11-23 behaviour); ":mbN" = length-sorted
# micro-batches of N rows inside each PPO minibatch (ppo.micro_batch_size=N), e.g. value_head:mb8.


def critic_variant(name: str) -> dict:
    kind, *flags = name.split(":")
    if kind not in CRITIC_KINDS:
        raise SystemExit(f"unknown critic kind {kind!r} in {name!r}; kinds: {CRITIC_KINDS}")
    variant = {"kind": kind, "recompute": False, "micro_batch_size": None}
    for flag in flags:
        if flag == "recompute":
            variant["recompute"] = True
        elif flag.startswith("mb") and flag[2:].isdigit() and int(flag[2:]) > 0:
            variant["micro_batch_size"] = int(flag[2:])
        else:
            raise SystemExit(f"unknown critic flag {flag!r} in {name!r}; flags: recompute, mb<N>")
    return variant


QUICK = ["--model", "tiny", "--batch", "4", "--new-tokens", "8", "--runs", "1", "--critic", "value_head", "--threads", "1"]


# ------------------------------------------------------------------------------------- workers
def ours_worker(args) -> dict:
    import lightning as L
    import torch

    from lightning_run import GPU, fit_stage

    class StepMetrics(L.Callback):
        def __init__(self):
            self.rows: list[dict] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            metrics = trainer.callback_metrics
            self.rows.append({k: float(metrics[k]) for k in ("time/generate", "time/score", "time/train",
                                                             "train/response_length") if k in metrics})

    steps = args.warmup + args.steps
    variant = critic_variant(args.critic)
    overrides = model_overrides(args) + [
        "stage=ppo", "peft=lora", "data=prompts_demo", f"data.batch_size={args.batch}",
        f"data.sources.0.n={prompts_needed(args.batch, steps)}", f"stage.module.rollout.max_new_tokens={args.new_tokens}",
        f"stage.module.update.epochs={args.epochs}", f"stage.module.update.minibatch_size={args.minibatch or 'null'}",
        f"stage.module.critic.kind={variant['kind']}", "stage.module.log_samples_every_n_steps=0",
        f"stage.module.rollout.logprobs_from_generation={not variant['recompute']}",
        f"stage.module.update.micro_batch_size={variant['micro_batch_size'] or 'null'}",
        f"trainer.max_steps={steps}"] + (GPU if args.gpu else [])
    recorder = StepMetrics()
    _, _, durations = fit_stage(overrides, callbacks=[recorder])
    step = steady_step_s(durations, args.warmup)
    timed = recorder.rows[args.warmup:]
    split = {name.split("/")[1] + "_s": round(statistics.median(r[name] for r in timed), 3)
             for name in ("time/generate", "time/score", "time/train")}
    return {"system": f"ours[{args.critic}]", "step_s": round(step, 3), "samples_per_s": round(args.batch / step, 3),
            **split, "response_length": round(statistics.mean(r["train/response_length"] for r in timed), 2),
            "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": peak_gpu_mb(), "threads": torch.get_num_threads(),
            "step_s_each": [round(d, 3) for d in durations]}


def trl_worker(args) -> dict:
    import tempfile

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl.experimental.ppo import PPOConfig, PPOTrainer
    from trl.experimental.ppo import ppo_trainer as trl_ppo

    from ppo_settings import LetterCountRewardModel
    from rlhf.core.models import load_backbone, load_backbone_tokenizer
    from rlhf.reward_model.module import load_reward_backbone
    from step_timers import HFStepTimer

    generate_s: list[float] = []
    plain_generation = trl_ppo.batch_generation

    def timed_generation(*a, **kw):
        start = time.perf_counter()
        out = plain_generation(*a, **kw)
        generate_s.append(time.perf_counter() - start)
        return out

    trl_ppo.batch_generation = timed_generation  # TRL calls it by module-level name inside train()
    steps = args.warmup + args.steps
    spec = model_spec(args)
    tokenizer = load_backbone_tokenizer(spec)
    tokenizer.padding_side = "left"  # TRL's PPO appends responses to the query block: prompts left-padded
    policy = load_backbone(spec, tokenizer)
    value_model = load_reward_backbone(spec, tokenizer)
    reward_model = LetterCountRewardModel(tokenizer)
    dataset = Dataset.from_dict({"input_ids": prompt_token_ids(tokenizer, prompts_needed(args.batch, steps))})
    minibatch = args.minibatch or args.batch
    config = PPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-ppo-bench-"), per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=1, num_mini_batches=args.batch // minibatch, num_ppo_epochs=args.epochs,
        response_length=args.new_tokens, temperature=1.0, stop_token="eos", total_episodes=args.batch * steps,
        local_rollout_forward_batch_size=args.batch, num_sample_generations=0, learning_rate=1.41e-5,
        report_to=[], save_strategy="no", logging_steps=1_000_000, disable_tqdm=True, bf16=args.gpu,
        use_cpu=not args.gpu, gradient_checkpointing=False, seed=0, dataloader_num_workers=0)
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    timer = HFStepTimer()
    trainer = PPOTrainer(args=config, processing_class=tokenizer, model=policy, ref_model=None, reward_model=reward_model,
                         train_dataset=dataset, value_model=value_model, peft_config=peft_config, callbacks=[timer])
    trainer.train()
    step = steady_step_s(timer.durations, args.warmup)
    gen = statistics.median(generate_s[args.warmup:])
    return {"system": "trl", "step_s": round(step, 3), "samples_per_s": round(args.batch / step, 3),
            "generate_s": round(gen, 3), "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": peak_gpu_mb(),
            "threads": torch.get_num_threads(), "step_s_each": [round(d, 3) for d in timer.durations]}


def floor_worker(args) -> dict:
    from ppo_floor import measure_floor

    args.reps = args.steps
    return measure_floor(args)


WORKERS = {"ours": ours_worker, "trl": trl_worker, "floor": floor_worker}


# -------------------------------------------------------------------------------- orchestration
def worker_args(args, system: str, critic: str | None = None, batch: int | None = None,
                new_tokens: int | None = None) -> list[str]:
    return ["--worker", system, *settings_argv(args, batch, new_tokens), "--warmup", str(args.warmup),
            "--steps", str(args.steps), "--critic", critic or args.critic[0]]


def labelled_jobs(args) -> list[tuple[str, list[str]]]:
    jobs = []
    for system in args.systems:
        if system == "ours":
            jobs += [(f"ours[{critic}]", worker_args(args, "ours", critic)) for critic in args.critic]
        else:
            jobs.append((system, worker_args(args, system)))
    return jobs


def compare(args) -> dict:
    """Medians per system, and every ratio computed run by run (median with range): run i of each
    system ran back to back under the same load."""
    runs = interleaved_runs(__file__, labelled_jobs(args), args.runs, args.timeout, args.threads)
    summary = {label: median_summary(results) for label, results in runs.items()}
    ratios = {}
    for label in runs:
        if label.startswith("ours") and "trl" in runs:
            ratios[f"{label}_vs_trl"] = paired_ratios(runs[label], runs["trl"], ("samples_per_s", "peak_rss_mb"))
        if label != "floor" and "floor" in runs:
            floor = [{"step_s": r["floor_step_s"]} for r in runs["floor"]]
            ratios[f"{label}_step_vs_floor"] = paired_ratios(runs[label], floor, ("step_s",))["step_s"]
    below = {label: r["min"] for label, r in ratios.items() if label.endswith("_step_vs_floor") and r["min"] < 1}
    if below:
        print(f"warning: below the floor in some run ({below}): read the floor as a baseline", file=sys.stderr)
    return {"median": summary, "paired_ratios": ratios, "statistics_note": run_count_note(args.runs, args.warmup),
            "below_floor": below, "runs": runs}


def scaling(args) -> dict:
    """Step time of our PPOModule (and any other --systems) over batch × response length."""
    if args.grid:
        configs = [(b, n) for b in args.batches for n in args.lengths]
    else:  # the two axes through the default point (batch 16, 32 tokens)
        configs = [(b, args.new_tokens) for b in args.batches]
        configs += [(args.batch, n) for n in args.lengths if (args.batch, n) not in configs]
    rows = []
    for batch, new_tokens in configs:
        for system in args.systems:
            critics = args.critic if system == "ours" else [None]
            for critic in critics:
                results = [run_worker(__file__, worker_args(args, system, critic, batch, new_tokens),
                                      timeout=args.timeout, threads=args.threads) for _ in range(args.runs)]
                row = {"batch": batch, "new_tokens": new_tokens, "system": results[0]["system"],
                       **median_summary(results), "runs": args.runs}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    return {"rows": rows}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_settings_arguments(p)
    p.add_argument("--critic", default="separate,value_head",
                   help="our critic variant(s), comma-separated: separate|value_head [:recompute] [:mbN]")
    p.add_argument("--systems", default="floor,ours,trl", help="comma-separated subset of floor,ours,trl")
    p.add_argument("--runs", type=int, default=MIN_RUNS, help="paired runs: a fresh process per system each")
    p.add_argument("--warmup", type=int, default=MIN_WARMUP, help="untimed PPO steps at the start of each run")
    p.add_argument("--steps", type=int, default=1, help="timed PPO steps per run")
    p.add_argument("--scaling", action="store_true", help="step time vs batch size and response length")
    p.add_argument("--batches", default="8,16,32,64")
    p.add_argument("--lengths", default="32,64,128")
    p.add_argument("--grid", action="store_true", help="scaling over the full batch × length grid (default: two axes)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per worker process")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: one per core)")
    p.add_argument("--quick", action="store_true", help="tiny model, batch 4, 8 tokens, 1 run: a smoke run")
    p.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    return p


def parse(argv: list[str] | None):
    args = parse_quick(parser, argv, QUICK, mark_quick=True)
    if not args.worker:
        args.critic = args.critic.split(",")
        args.systems = args.systems.split(",")
        args.batches = [int(x) for x in args.batches.split(",")]
        args.lengths = [int(x) for x in args.lengths.split(",")]
        unknown = set(args.systems) - set(SYSTEMS)
        if unknown:
            raise SystemExit(f"unknown system {sorted(unknown)}; systems: {SYSTEMS}")
        for critic in args.critic:
            critic_variant(critic)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    multi_worker_main(args, WORKERS, scaling if args.scaling else compare)


if __name__ == "__main__":
    main()
