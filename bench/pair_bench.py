"""The command line and the side-by-side comparison shared by the pairwise benchmarks
(rm_throughput.py: reward-model training, dpo_throughput.py: DPO): the same pairs, batch, length
and LoRA for ours and TRL's trainer, one fresh process per system and run, medians, and ours/TRL ratios
computed run by run (median with range)."""

from __future__ import annotations

import argparse

from harness import (MIN_RUNS, MIN_WARMUP, interleaved_runs, median_summary, paired_ratios, parse_quick, peak_gpu_mb,
                     peak_rss_mb, run_count_note, steady_step_s)

SYSTEMS = ("ours", "ours_padded", "trl")
QUICK = ["--model", "tiny", "--runs", "1", "--batch", "4", "--max-length", "64", "--min-prompt-tokens", "32", "--steps", "2", "--threads", "1"]


def data_overrides(args) -> list[str]:
    """The HH-RLHF pairs both systems train on, tokenised and truncated by our data module."""
    overrides = ["data=hh_rlhf_pairs", f"data.sources.0.limit={args.pairs_loaded}", f"data.max_length={args.max_length}",
                 f"data.min_prompt_tokens={args.min_prompt_tokens}", f"data.batch_size={args.batch}",
                 "data.val_fraction=0.0"]
    return overrides + ([f"paths.data_dir={args.data_dir}"] if args.data_dir else [])


def result(name: str, args, durations: list[float]) -> dict:
    """One worker's figures: steady step time, pairs/s, peak memory."""
    import torch

    step = steady_step_s(durations, args.warmup)
    return {"system": name, "step_s": round(step, 3), "pairs_per_s": round(args.batch / step, 3),
            "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": peak_gpu_mb(), "threads": torch.get_num_threads(),
            "step_s_each": [round(d, 3) for d in durations]}


def groups_in_our_order(datamodule) -> list[dict]:
    """The train groups in the order our loader serves them in its first epoch (same seed), so TRL,
    read sequentially, trains on the same batches in the same order as ours (one pair per HH group:
    a batch of B groups is B pairs on both sides)."""
    return [datamodule.train_set[i] for i in datamodule.train_dataloader()._indices()]


def sequential(trainer_cls):
    """`trainer_cls` reading its train set in order instead of shuffling it (HF Trainer's sampler hook)."""
    from torch.utils.data import SequentialSampler

    class InOrder(trainer_cls):
        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    InOrder.__name__ = f"Sequential{trainer_cls.__name__}"
    return InOrder


def worker_args(args, system: str) -> list[str]:
    out = ["--worker", system, "--model", args.model, "--batch", str(args.batch), "--max-length", str(args.max_length),
           "--min-prompt-tokens", str(args.min_prompt_tokens), "--warmup", str(args.warmup), "--steps", str(args.steps)]
    if args.model_source:
        out += ["--model-source", args.model_source]
    if args.data_dir:
        out += ["--data-dir", args.data_dir]
    if args.gpu:
        out.append("--gpu")
    return out


def compare(args, script: str) -> dict:
    """Each system's median, and per run the ours/TRL ratios of pairs/s and peak RSS (median, range);
    `script` runs the workers."""
    jobs = [(system, worker_args(args, system)) for system in args.systems]
    runs = interleaved_runs(script, jobs, args.runs, args.timeout, args.threads)
    summary = {system: median_summary(results) for system, results in runs.items()}
    ratios = {f"{system}_vs_trl": paired_ratios(runs[system], runs["trl"], ("pairs_per_s", "peak_rss_mb"))
              for system in ("ours", "ours_padded") if {system, "trl"} <= set(runs)}
    return {"median": summary, "paired_ratios": ratios, "statistics_note": run_count_note(args.runs, args.warmup),
            "runs": runs}


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m", help="a configs/model group (tiny, smollm2-135m, hub)")
    p.add_argument("--model-source", default=None, help="model.source override, e.g. a larger hub id or folder")
    p.add_argument("--batch", type=int, default=8, help="preference pairs per optimizer step")
    p.add_argument("--max-length", type=int, default=256, help="tokens per sequence after truncation")
    p.add_argument("--min-prompt-tokens", type=int, default=64, help="prompt tokens kept when truncating")
    p.add_argument("--data-dir", default=None, help="default: $RLHF_DATA_DIR or ../shared/data")
    p.add_argument("--systems", default="ours,trl", help=f"comma-separated, of {', '.join(SYSTEMS)}")
    p.add_argument("--runs", type=int, default=MIN_RUNS, help="paired runs: a fresh process per system each")
    p.add_argument("--warmup", type=int, default=MIN_WARMUP, help="untimed optimizer steps at the start of each run")
    p.add_argument("--steps", type=int, default=4, help="timed optimizer steps per run")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: one per core)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per worker process")
    p.add_argument("--gpu", action="store_true", help="CUDA bf16; FSDP2 on one GPU for ours")
    p.add_argument("--quick", action="store_true", help="tiny model, batch 4, 64 tokens, 1 run: a smoke run")
    p.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    return p


def parse(make_parser, argv: list[str] | None):
    args = parse_quick(make_parser, argv, QUICK, mark_quick=True)
    # a few spare pairs: pairs with identical or empty responses are dropped by the data module
    args.pairs_loaded = args.batch * (args.warmup + args.steps + 2)
    if not args.worker:
        args.systems = args.systems.split(",")
        if set(args.systems) - set(SYSTEMS):
            raise SystemExit(f"unknown system in {args.systems}; allowed: {SYSTEMS}")
    return args
