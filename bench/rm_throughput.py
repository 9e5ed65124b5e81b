"""Reward-model training throughput (pairs/s) and peak RSS: our RewardModule vs TRL's RewardTrainer.

Same model (SmolLM2-135M fp32 + LoRA r16/a32/dropout 0.05 on all linear layers, score head trained),
same data (the first HH-RLHF harmless-base pairs of ../shared/data, chatml, truncated by our rule to
`--max-length` tokens: TRL receives our token ids so both see identical sequences), same batch (pairs
per step; 2 × that many sequences), AdamW lr 5e-5 cosine, grad-norm clip 0.3, no gradient
checkpointing (TRL's default is on: switched off here so the work is the same). Ours runs through a
Lightning Trainer fit of the `stage=reward` config. Each (run, system) is a fresh subprocess; the
figure is the median over runs of the median timed step after `--warmup` untimed steps.

    .venv/bin/python bench/rm_throughput.py            # 3 runs each
    .venv/bin/python bench/rm_throughput.py --quick    # tiny model smoke run
    .venv/bin/python bench/rm_throughput.py --gpu      # bf16, FSDP2 on one GPU for ours, bf16 for TRL
"""

from __future__ import annotations

import argparse

from harness import (interleaved_runs, median_summary, multi_worker_main, parse_quick, peak_gpu_mb, peak_rss_mb,
                     steady_step_s)
from ppo_settings import LORA, model_overrides, model_spec

SYSTEMS = ("ours", "ours_padded", "trl")
QUICK = ["--model", "tiny", "--runs", "1", "--batch", "4", "--max-length", "64", "--min-prompt-tokens", "32", "--steps", "2", "--threads", "1"]
LR, GRAD_CLIP = 5e-5, 0.3


def data_overrides(args) -> list[str]:
    overrides = ["data=hh_rlhf_pairs", f"data.sources.0.limit={args.pairs_loaded}", f"data.max_length={args.max_length}",
                 f"data.min_prompt_tokens={args.min_prompt_tokens}", f"data.batch_size={args.batch}",
                 "data.val_fraction=0.0"]
    return overrides + ([f"paths.data_dir={args.data_dir}"] if args.data_dir else [])


def ours_worker(args, layout: list[str] | None = None, name: str = "ours") -> dict:
    import torch

    from lightning_run import GPU, fit_stage

    steps = args.warmup + args.steps
    overrides = model_overrides(args) + data_overrides(args) + (layout or []) + [
        "stage=reward", "peft=lora", f"stage.module.optim.lr={LR}", f"trainer.gradient_clip_val={GRAD_CLIP}",
        f"trainer.max_steps={steps}", "+trainer.limit_val_batches=0"] + (GPU if args.gpu else [])
    _, _, durations = fit_stage(overrides)
    step = steady_step_s(durations, args.warmup)
    return {"system": name, "step_s": round(step, 3), "pairs_per_s": round(args.batch / step, 3),
            "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": peak_gpu_mb(), "threads": torch.get_num_threads(),
            "step_s_each": [round(d, 3) for d in durations]}


def ours_padded_worker(args) -> dict:
    """Ours without the shared-prefix packing: every sequence its own padded row, as TRL does."""
    return ours_worker(args, ["data.shared_prefix=false"], "ours_padded")


def trl_worker(args) -> dict:
    import tempfile

    import torch
    from datasets import Dataset
    from hydra.utils import instantiate
    from peft import LoraConfig
    from trl import RewardConfig, RewardTrainer

    from lightning_run import GPU, compose_train_config
    from rlhf.reward_model.module import load_reward_backbone
    from step_timers import HFStepTimer

    steps = args.warmup + args.steps
    cfg = compose_train_config(model_overrides(args) + data_overrides(args) + ["stage=reward"] + (GPU if args.gpu else []),
                               tempfile.gettempdir())
    from rlhf.core.models import load_backbone_tokenizer

    datamodule = instantiate(cfg.data, tokenizer=load_backbone_tokenizer(model_spec(args)))  # our tokenisation and truncation, so both systems get the same ids
    datamodule.setup("fit")
    chosen, rejected = [], []
    for group in datamodule.train_set:
        for c, r in group["pairs"]:
            chosen.append(group["input_ids"][c])
            rejected.append(group["input_ids"][r])
    tokenizer = datamodule.tokenizer
    model = load_reward_backbone(model_spec(args), tokenizer)
    config = RewardConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-rm-bench-"), per_device_train_batch_size=args.batch, max_steps=steps,
        learning_rate=LR, lr_scheduler_type="cosine", warmup_steps=0.03, adam_beta1=0.9, adam_beta2=0.95,
        weight_decay=0.0, max_grad_norm=GRAD_CLIP, gradient_checkpointing=False, bf16=args.gpu, use_cpu=not args.gpu,
        report_to=[], save_strategy="no", logging_steps=1_000_000, disable_tqdm=True, max_length=None,
        disable_dropout=False, dataloader_num_workers=0, seed=0)
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=LORA["target_modules"], task_type="SEQ_CLS", modules_to_save=["score"])
    timer = HFStepTimer()
    trainer = RewardTrainer(model=model, args=config, processing_class=tokenizer, peft_config=peft_config,
                            train_dataset=Dataset.from_dict({"chosen_ids": chosen, "rejected_ids": rejected}),
                            callbacks=[timer])
    trainer.train()
    step = steady_step_s(timer.durations, args.warmup)
    return {"system": "trl", "step_s": round(step, 3), "pairs_per_s": round(args.batch / step, 3),
            "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": peak_gpu_mb(), "threads": torch.get_num_threads(),
            "step_s_each": [round(d, 3) for d in timer.durations]}


WORKERS = {"ours": ours_worker, "ours_padded": ours_padded_worker, "trl": trl_worker}


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


def compare(args) -> dict:
    jobs = [(system, worker_args(args, system)) for system in args.systems]
    runs = interleaved_runs(__file__, jobs, args.runs, args.timeout, args.threads)
    summary = {system: median_summary(results) for system, results in runs.items()}
    ratios = {}
    for system in ("ours", "ours_padded"):
        if {system, "trl"} <= set(summary):
            suffix = "" if system == "ours" else f"_{system}"
            ratios[f"pairs_per_s_vs_trl{suffix}"] = round(summary[system]["pairs_per_s"] / summary["trl"]["pairs_per_s"], 3)
            ratios[f"peak_rss_vs_trl{suffix}"] = round(summary[system]["peak_rss_mb"] / summary["trl"]["peak_rss_mb"], 3)
    return {"median": summary, "ratios": ratios, "runs": runs}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m", help="a configs/model group (tiny, smollm2-135m, hub)")
    p.add_argument("--model-source", default=None, help="model.source override, e.g. a larger hub id or folder")
    p.add_argument("--batch", type=int, default=8, help="preference pairs per optimizer step")
    p.add_argument("--max-length", type=int, default=256, help="tokens per sequence after truncation")
    p.add_argument("--min-prompt-tokens", type=int, default=64, help="prompt tokens kept when truncating")
    p.add_argument("--data-dir", default=None, help="default: $RLHF_DATA_DIR or ../shared/data")
    p.add_argument("--systems", default="ours,trl", help=f"comma-separated, of {', '.join(SYSTEMS)}")
    p.add_argument("--runs", type=int, default=3, help="fresh processes per system (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed optimizer steps at the start of each run")
    p.add_argument("--steps", type=int, default=4, help="timed optimizer steps per run")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: one per core)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per worker process")
    p.add_argument("--gpu", action="store_true", help="CUDA bf16; FSDP2 on one GPU for ours")
    p.add_argument("--quick", action="store_true", help="tiny model, batch 4, 64 tokens, 1 run: a smoke run")
    p.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    return p


def parse(argv: list[str] | None):
    args = parse_quick(parser, argv, QUICK, mark_quick=True)
    # a few spare pairs: groups whose two responses are identical are dropped by the data module
    args.pairs_loaded = args.batch * (args.warmup + args.steps + 2)
    if not args.worker:
        args.systems = args.systems.split(",")
        if set(args.systems) - set(SYSTEMS):
            raise SystemExit(f"unknown system in {args.systems}; allowed: {SYSTEMS}")
    return args


def main(argv: list[str] | None = None) -> None:
    multi_worker_main(parse(argv), WORKERS, compare)


if __name__ == "__main__":
    main()
