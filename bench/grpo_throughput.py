"""GRPO step time, samples/s and peak RSS: our RL stage with `algorithm=grpo` vs TRL's GRPOTrainer.

Same settings on both sides: SmolLM2-135M-Instruct (the embedded model) fp32 on CPU, 16 demo RL
prompts per step rendered with the chatml template (token-identical on both sides), G = 4
completions per prompt (64 per step, one optimizer step over all of them), one update epoch
(TRL `num_iterations=1`), β = 0.04 with the k3 estimator in the loss, ε = 0.2, sequence-mean loss
aggregation (ours seq_mean_token_mean = TRL loss_type="grpo"), group std scaling, temperature 1,
top-p 1, LoRA r16/α32/dropout 0.05 on all linear layers (reference = the adapter-disabled actor),
AdamW lr 1.41e-5 / betas (0.9, 0.95) / wd 1e-6 / clip 1.0, constant schedule, dropout off, and a
closed-form reward (the number of letters "e" in the decoded completion, case-insensitive: our
`reward_fn=word_count` and, for TRL, the same count as a plain reward function). No vLLM, no
gradient checkpointing, logging off.

EOS: our rollout has no way to ban EOS (no logit bias in rlhf/rl/rollout.py), so neither side
forces the response length; both stop at EOS (or at --new-tokens) and every result records the
mean response length, the EOS count and the response tokens per second, which is the figure to
read when the two sides stop at different lengths.

Each (run, system, new-token setting) is a fresh subprocess (peak RSS = that system alone); runs
are interleaved (run 1: every job, run 2: every job, ...) so load changes hit both systems alike.
Per job: the median timed step and completions/s over the timed steps (after `--warmup` untimed
steps); per run and setting the paired ratio ours/TRL, reported as median with min and max.

    .venv/bin/python bench/grpo_throughput.py --out grpo.json                  # CPU comparison, 5 paired runs
    .venv/bin/python bench/grpo_throughput.py --model tiny --steps 1 --runs 1 --warmup 0 --new-tokens 8
    .venv/bin/python bench/grpo_throughput.py --dry-run                         # settings only, no training
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness & co. when imported from a test

from harness import (MIN_RUNS, MIN_WARMUP, emit, interleaved_runs, load_now, machine_record, median_summary,  # noqa: E402
                     peak_gpu_mb, peak_rss_mb, run_count_note)
from harness import paired_ratios as harness_paired_ratios  # noqa: E402

SYSTEMS = ("ours", "trl")
MODELS = {"embedded": "smollm2-135m", "tiny": "tiny"}
"""--model name -> configs/model group."""
GRPO = {"beta": 0.04, "clip_eps": 0.2, "temperature": 1.0, "top_p": 1.0, "lr": 1.41e-5, "betas": (0.9, 0.95),
        "eps": 1e-8, "weight_decay": 1e-6, "grad_clip": 1.0}
"""Our configs/algorithm/grpo.yaml + the RL stage's optimizer defaults, which TRL is given too."""
RATIO_KEYS = ("samples_per_s", "tokens_per_s", "step_s", "peak_rss_mb")


# -------------------------------------------------------------------------------- settings
def ours_overrides(args, new_tokens: int) -> list[str]:
    """Hydra overrides of `python -m rlhf.train` for our side (the RL stage, algorithm=grpo)."""
    steps = args.warmup + args.steps
    return [f"model={MODELS[args.model]}", "stage=ppo", "algorithm=grpo", "peft=lora", *prompt_overrides(args),
            "reward_fn.word=e", "reward_fn.whole_word=false", f"data.batch_size={args.prompts}",
            f"stage.module.rollout.n_samples_per_prompt={args.generations}",
            f"stage.module.rollout.max_new_tokens={new_tokens}",
            f"stage.module.rollout.temperature={GRPO['temperature']}", f"stage.module.rollout.top_p={GRPO['top_p']}",
            f"stage.module.kl.init_beta={GRPO['beta']}", "stage.module.update.epochs=1",
            "stage.module.update.minibatch_size=null", f"stage.module.update.clip_eps={GRPO['clip_eps']}",
            f"stage.module.actor_optim.lr={GRPO['lr']}", "stage.module.log_samples_every_n_steps=0",
            f"trainer.max_steps={steps}"]


def trl_config_kwargs(args, new_tokens: int, output_dir: str) -> dict:
    """GRPOConfig arguments: one optimizer step = `prompts` × `generations` completions, generated at once."""
    rows = args.prompts * args.generations
    return dict(
        output_dir=output_dir, per_device_train_batch_size=rows, gradient_accumulation_steps=1,
        steps_per_generation=1, num_generations=args.generations, max_completion_length=new_tokens,
        max_steps=args.warmup + args.steps, num_iterations=1, beta=GRPO["beta"], epsilon=GRPO["clip_eps"],
        loss_type="grpo", scale_rewards="group", temperature=GRPO["temperature"], top_p=GRPO["top_p"], top_k=0,
        shuffle_dataset=False, learning_rate=GRPO["lr"], adam_beta1=GRPO["betas"][0], adam_beta2=GRPO["betas"][1],
        adam_epsilon=GRPO["eps"], weight_decay=GRPO["weight_decay"], max_grad_norm=GRPO["grad_clip"],
        lr_scheduler_type="constant", warmup_steps=0, disable_dropout=True, use_vllm=False, use_cpu=True,
        bf16=False, fp16=False, activation_checkpointing=False, report_to=[], logging_steps=1_000_000,
        log_completions=False, save_strategy="no", disable_tqdm=True, seed=0, dataloader_num_workers=0)


def lora_kwargs() -> dict:
    from ppo_settings import LORA

    return dict(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                target_modules=LORA["target_modules"], task_type="CAUSAL_LM")


def model_spec(args) -> dict:
    """The resolved `model` config group, as our module receives it (TRL loads the same weights)."""
    from omegaconf import OmegaConf

    from lightning_run import compose_train_config

    cfg = compose_train_config([f"model={MODELS[args.model]}"], tempfile.gettempdir())
    return OmegaConf.to_container(cfg.model, resolve=True)


def prompt_overrides(args) -> list[str]:
    """Our data config for the prompt set: the demo RL prompts, or a prompts file (--prompts-file)."""
    steps = args.warmup + args.steps
    if not args.prompts_file:
        return ["data=prompts_demo", f"data.sources.0.n={args.prompts * steps}"]
    return ["data=prompts_jsonl", f"data.sources.0.path={args.prompts_file}", f"data.sources.0.limit={args.prompts * steps}",
            f"data.max_prompt_tokens={args.max_prompt_tokens}"]


def our_prompt_records(args, tokenizer, new_tokens: int) -> list[dict]:
    """The prompt records in the order our loader serves them (same config, same seed), so TRL, reading
    them in order (shuffle_dataset=False), gets the same 16 prompts in every step."""
    from hydra.utils import instantiate

    from lightning_run import compose_train_config

    cfg = compose_train_config(ours_overrides(args, new_tokens), tempfile.gettempdir())
    datamodule = instantiate(cfg.data, tokenizer=tokenizer)
    datamodule.setup("fit")
    return [datamodule.records[i] for i in datamodule.train_dataloader()._indices()]


def prompt_texts(tokenizer, records: list[dict]) -> list[str]:
    """Our prompt records as chatml strings ending in the assistant prefix, for TRL, which tokenizes
    them whole; `prompt_ids_match` checks that gives our segment-wise ids."""
    from rlhf.data.templates import get_template

    template = get_template("chatml", tokenizer.eos_token)
    return ["".join(s.text for s in template.segments(r["prompt"], eos_token=tokenizer.eos_token))
            + template.generation_prefix for r in records]


def prompt_ids_match(tokenizer, texts: list[str], records: list[dict]) -> bool:
    return [r["input_ids"] for r in records] == [tokenizer(t)["input_ids"] for t in texts]  # TRL: processing_class(text=...)


def write_hh_prompts(data_dir: str | None, out: Path, n: int, max_tokens: int, tokenizer) -> dict:
    """The first n HH-RLHF harmless dialogues up to their last Assistant turn (the prompts RLHF papers
    train on, multi-turn, ~5x the demo prompts' length) that fit in max_tokens chatml tokens, as a
    prompts JSONL; returns their token-length statistics."""
    import gzip

    from rlhf.data.prompt_encoding import encode_prompt
    from rlhf.data.sources import parse_hh_transcript
    from rlhf.data.templates import get_template

    import os

    root = Path(data_dir or os.environ.get("RLHF_DATA_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
    source = root / "preference" / "hh_rlhf_harmless_base_test_dev.jsonl.gz"
    template = get_template("chatml", tokenizer.eos_token)
    rows, lengths = [], []
    with gzip.open(source, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            messages = parse_hh_transcript(json.loads(line)["chosen"], (str(source), number))[:-1]
            ids = encode_prompt(tokenizer, template, messages, None)
            if messages and messages[-1]["role"] == "user" and len(ids) <= max_tokens:
                rows.append({"id": f"hh{number}", "prompt": messages})
                lengths.append(len(ids))
            if len(rows) == n:
                break
    if len(rows) < n:
        raise SystemExit(f"{source}: only {len(rows)} dialogues fit in {max_tokens} tokens; {n} needed")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"file": str(source), "prompts": n, "max_tokens": max_tokens, "median_tokens": statistics.median(lengths),
            "mean_tokens": round(statistics.mean(lengths), 1), "min_tokens": min(lengths), "max_tokens_seen": max(lengths)}


def letter_count(text: str, letter: str = "e") -> float:
    """Our word_count reward (word "e", substrings, case-insensitive) in closed form."""
    return float(text.lower().count(letter))


def letter_e_reward(prompts, completions, **_) -> list[float]:
    """TRL reward function (its __name__ names TRL's reward metric)."""
    return [letter_count(c) for c in completions]


def _timed(durations: list[float], warmup: int) -> list[float]:
    timed = durations[warmup:]
    if not timed:
        raise ValueError(f"no timed step: {len(durations)} steps ran, {warmup} are warm-up")
    return timed


def _result(system: str, args, new_tokens: int, durations: list[float], lengths: list[float], eos: list[int],
            generate_s: list[float], extra: dict) -> dict:
    """One worker's figures over the timed steps. lengths: mean response length per step (EOS
    included), eos: completions per step that ended with EOS."""
    import torch

    rows = args.prompts * args.generations
    timed = _timed(durations, args.warmup)
    w = args.warmup
    tokens = sum(l * rows for l in lengths[w:])
    return {"system": system, "new_tokens": new_tokens, "completions_per_step": rows,
            "step_s": round(statistics.median(timed), 3),
            "samples_per_s": round(rows * len(timed) / sum(timed), 3),
            "tokens_per_s": round(tokens / sum(timed), 2),
            "generate_s": round(statistics.median(generate_s[w:]), 3) if generate_s[w:] else None,
            "response_length": round(statistics.mean(lengths[w:]), 2),
            "eos_count": int(sum(eos[w:])), "eos_fraction": round(sum(eos[w:]) / (rows * len(timed)), 3),
            **extra, "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": peak_gpu_mb(), "threads": torch.get_num_threads(),
            "step_s_each": [round(d, 3) for d in durations],
            "response_length_each": [round(l, 2) for l in lengths], "eos_count_each": list(eos)}


# ------------------------------------------------------------------------------------- workers
def ours_worker(args) -> dict:
    import lightning as L

    from lightning_run import fit_stage

    class StepMetrics(L.Callback):
        def __init__(self):
            self.rows: list[dict] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            m = trainer.callback_metrics
            self.rows.append({k: float(m[k]) for k in ("time/generate", "time/score", "time/train",
                                                       "train/response_length", "train/ended_fraction") if k in m})

    new_tokens = args.new_tokens[0]
    rows = args.prompts * args.generations
    recorder = StepMetrics()
    module, _, durations = fit_stage(ours_overrides(args, new_tokens), callbacks=[recorder])
    timed = recorder.rows[args.warmup:]
    split = {name.split("/")[1] + "_s": round(statistics.median(r[name] for r in timed), 3)
             for name in ("time/score", "time/train")}
    return _result("ours", args, new_tokens, durations, [r["train/response_length"] for r in recorder.rows],
                   [round(r["train/ended_fraction"] * rows) for r in recorder.rows],
                   [r["time/generate"] for r in recorder.rows], {**split, "algorithm": module.cfg.algorithm.name})


def trl_worker(args) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    from rlhf.core.models import load_backbone, load_backbone_tokenizer
    from step_timers import HFStepTimer

    new_tokens = args.new_tokens[0]
    steps = args.warmup + args.steps
    spec = model_spec(args)
    tokenizer = load_backbone_tokenizer(spec)
    policy = load_backbone(spec, tokenizer)
    records = our_prompt_records(args, tokenizer, new_tokens)[:args.prompts * steps]
    texts = prompt_texts(tokenizer, records)
    same_ids = prompt_ids_match(tokenizer, texts, records)
    config = GRPOConfig(**trl_config_kwargs(args, new_tokens, tempfile.mkdtemp(prefix="trl-grpo-bench-")))
    timer = HFStepTimer()
    trainer = GRPOTrainer(model=policy, reward_funcs=letter_e_reward, args=config,
                          train_dataset=Dataset.from_dict({"prompt": texts}), processing_class=tokenizer,
                          peft_config=LoraConfig(**lora_kwargs()), callbacks=[timer])
    lengths, eos, generate_s = [], [], []
    plain_generation = trainer._generate_single_turn  # HF generate: returns completion ids cut after the first EOS
    eos_id = tokenizer.eos_token_id

    def recorded_generation(*a, **kw):
        start = time.perf_counter()
        completion_ids, logprobs = plain_generation(*a, **kw)
        generate_s.append(time.perf_counter() - start)
        lengths.append(float(statistics.mean(len(c) for c in completion_ids)))
        eos.append(sum(1 for c in completion_ids if c and c[-1] == eos_id))
        return completion_ids, logprobs

    trainer._generate_single_turn = recorded_generation
    trainer.train()
    if len(lengths) != len(timer.durations):
        raise RuntimeError(f"TRL generated {len(lengths)} times over {len(timer.durations)} steps; expected one "
                           "generation per optimizer step (steps_per_generation=1)")
    return _result("trl", args, new_tokens, timer.durations, lengths, eos, generate_s,
                   {"prompt_ids_match_ours": same_ids, "loss_type": config.loss_type})


WORKERS = {"ours": ours_worker, "trl": trl_worker}


# -------------------------------------------------------------------------------- orchestration
def worker_args(args, system: str, new_tokens: int) -> list[str]:
    return ["--worker", system, "--model", args.model, "--new-tokens", str(new_tokens), "--warmup", str(args.warmup),
            "--steps", str(args.steps), "--prompts", str(args.prompts), "--generations", str(args.generations),
            *(["--prompts-file", args.prompts_file, "--max-prompt-tokens", str(args.max_prompt_tokens)]
              if args.prompts_file else [])]


def labelled_jobs(args) -> list[tuple[str, list[str]]]:
    """(label, worker argv), new-token setting outer, system inner: one run goes through all of them."""
    return [(f"{system}@{n}", worker_args(args, system, n)) for n in args.new_tokens for system in args.systems]


def paired_ratios(runs: dict[str, list[dict]], new_tokens: list[int]) -> dict:
    """Per new-token setting: ours/TRL of each run (same run = same load), median with min and max."""
    return {str(n): {f"{key}_ours_vs_trl": value for key, value in
                     harness_paired_ratios(runs[f"ours@{n}"], runs[f"trl@{n}"], RATIO_KEYS).items()}
            for n in new_tokens if runs.get(f"ours@{n}") and runs.get(f"trl@{n}")}


def compare(args) -> dict:
    runs = interleaved_runs(__file__, labelled_jobs(args), args.runs, args.timeout, args.threads)
    median = {label: median_summary(results) for label, results in runs.items()}
    return {"median": median, "ratios": paired_ratios(runs, args.new_tokens),
            "statistics_note": run_count_note(args.runs, args.warmup), "runs": runs}


def dry_run(args) -> dict:
    """What the workers would run, resolved, without loading a model: our composed stage sections and
    TRL's GRPOConfig (built, so TRL's own checks run), side by side."""
    from omegaconf import OmegaConf
    from trl import GRPOConfig

    from lightning_run import compose_train_config

    out = {"jobs": [label for label, _ in labelled_jobs(args)], "ours": {}, "trl": {}, "lora": lora_kwargs()}
    for n in args.new_tokens:
        cfg = compose_train_config(ours_overrides(args, n), tempfile.gettempdir())
        module = OmegaConf.to_container(cfg.stage.module, resolve=True)
        sections = ("model", "peft", "reward_fn", "algorithm", "critic", "rollout", "kl", "update", "actor_optim")
        out["ours"][str(n)] = {"overrides": ours_overrides(args, n), "data_batch_size": cfg.data.batch_size,
                               "max_steps": cfg.trainer.max_steps, **{k: module[k] for k in sections}}
        with tempfile.TemporaryDirectory(prefix="trl-grpo-dry-") as output_dir:
            kwargs = trl_config_kwargs(args, n, output_dir)
            config = GRPOConfig(**kwargs)
        out["trl"][str(n)] = {**{k: v for k, v in kwargs.items() if k != "output_dir"},
                              "generation_batch_size": config.generation_batch_size,
                              "steps_per_generation": config.steps_per_generation,
                              "activation_checkpointing": bool(config.activation_checkpointing
                                                               or config.gradient_checkpointing)}
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="embedded", choices=sorted(MODELS),
                   help="embedded = SmolLM2-135M-Instruct; tiny = the random 2-layer Llama (smoke runs)")
    p.add_argument("--new-tokens", default="32,64", help="max new tokens per completion, comma-separated settings")
    p.add_argument("--systems", default="ours,trl", help="comma-separated subset of ours,trl")
    p.add_argument("--runs", type=int, default=MIN_RUNS, help="paired runs: a fresh process per system and setting each")
    p.add_argument("--warmup", type=int, default=MIN_WARMUP, help="untimed GRPO steps at the start of each run")
    p.add_argument("--steps", type=int, default=2, help="timed GRPO steps per run")
    p.add_argument("--prompts", type=int, default=16, help="prompts per step")
    p.add_argument("--generations", type=int, default=4, help="completions per prompt (G)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (0 = torch's default)")
    p.add_argument("--prompt-set", default="demo", choices=("demo", "hh"),
                   help="demo = the demo RL prompts (~20 tokens); hh = HH-RLHF harmless dialogues up to their last "
                        "Assistant turn (multi-turn, read from --data-dir)")
    p.add_argument("--data-dir", default=None, help="for --prompt-set hh; default: $RLHF_DATA_DIR or ../shared/data")
    p.add_argument("--max-prompt-tokens", type=int, default=256, help="hh: dialogues longer than this are left out")
    p.add_argument("--prompts-file", default=None, help=argparse.SUPPRESS)  # written by the orchestrator for hh
    p.add_argument("--timeout", type=float, default=3600, help="seconds per worker process")
    p.add_argument("--out", default=None, help="also write the JSON report to this file")
    p.add_argument("--dry-run", action="store_true", help="print the resolved settings of both sides; train nothing")
    p.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    return p


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        args.new_tokens = [int(x) for x in str(args.new_tokens).split(",") if x]
    except ValueError:
        raise SystemExit(f"--new-tokens takes comma-separated integers, got {args.new_tokens!r}") from None
    args.systems = [s for s in str(args.systems).split(",") if s]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"unknown system {sorted(unknown)}; systems: {SYSTEMS}")
    if not args.new_tokens or min(args.new_tokens) < 1:
        raise SystemExit("--new-tokens needs at least one setting, each >= 1")
    if args.warmup < 0 or args.steps < 1 or args.runs < 1:
        raise SystemExit("--warmup >= 0, --steps >= 1 and --runs >= 1")
    if args.generations < 2:
        raise SystemExit("--generations: GRPO's group baseline needs >= 2 completions per prompt")
    if args.prompts < 1:
        raise SystemExit("--prompts must be >= 1")
    args.threads = args.threads or None
    return args


def main(argv: list[str] | None = None) -> dict | None:
    args = parse(argv)
    if args.worker:
        emit(WORKERS[args.worker](args))
        return None
    machine = machine_record()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="grpo-bench-prompts-") as folder:
        prompt_set = {"name": args.prompt_set}
        if args.prompt_set == "hh":
            from rlhf.core.models import load_backbone_tokenizer

            args.prompts_file = str(Path(folder) / "hh_prompts.jsonl")
            prompt_set.update(write_hh_prompts(args.data_dir, Path(args.prompts_file),
                                               args.prompts * (args.warmup + args.steps), args.max_prompt_tokens,
                                               load_backbone_tokenizer(model_spec(args))))
        result = {"dry_run": dry_run(args)} if args.dry_run else compare(args)
    settings = {k: v for k, v in vars(args).items() if k != "worker"}
    report = {"machine": machine, "load_after": load_now(), "wall_s": round(time.perf_counter() - started, 1),
              "settings": settings, "prompt_set": prompt_set, "grpo": GRPO, **result}
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
