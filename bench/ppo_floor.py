"""The floor of one PPO step: the least any PPO implementation can spend.

floor = plain HF `generate` of the rollout (KV cache, sampling, stop at EOS)
      + one LoRA forward/backward and optimizer step per PPO minibatch × epochs.
No reference, old-policy or value forward, no critic, no scoring: every real PPO step does at least
this much work, so `PPO step / floor` is the overhead of the PPO machinery. Like our update loop it
trims each minibatch of the columns that are padding in every row, and it steps the same optimizer
(torch AdamW, defaults: neither fused nor foreach asked for). `ppo_throughput.py` runs it inside the same
interleaved runs as the systems it bounds and flags any run where a system goes below it (then it is
a baseline, not a floor).

    .venv/bin/python bench/ppo_floor.py            # SmolLM2-135M, batch 16, 32 new tokens, 4 epochs
    .venv/bin/python bench/ppo_floor.py --quick    # tiny model, < 60 s
"""

from __future__ import annotations

import argparse
import statistics
import time

from harness import parse_quick, peak_gpu_mb, peak_rss_mb, single_worker_main
from ppo_settings import LORA, add_settings_arguments, model_spec, prompt_token_ids, settings_argv

QUICK = ["--model", "tiny", "--batch", "4", "--new-tokens", "8", "--reps", "2", "--warmup", "1", "--threads", "1"]


def measure_floor(args) -> dict:
    import torch

    from rlhf.core.lora import apply_lora
    from rlhf.core.models import load_backbone, load_backbone_tokenizer
    from rlhf.data.prompt_encoding import left_pad
    from rlhf.rl.rollout import position_ids

    torch.manual_seed(0)
    device = "cuda" if args.gpu else "cpu"
    spec = model_spec(args)
    tokenizer = load_backbone_tokenizer(spec)
    model = apply_lora(load_backbone(spec, tokenizer), LORA).to(device)
    for module in model.modules():  # as PPOModule: dropout off so old and new log-probs agree
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    prompts = prompt_token_ids(tokenizer, args.batch * (args.warmup + args.reps))
    minibatch = args.minibatch or args.batch
    generate_s, update_s, lengths = [], [], []
    for rep in range(args.warmup + args.reps):
        query, query_mask = left_pad(prompts[rep * args.batch:(rep + 1) * args.batch], tokenizer.pad_token_id)
        query, query_mask = query.to(device), query_mask.to(device)
        sync(device)
        start = time.perf_counter()
        model.eval()
        with torch.no_grad():
            out = model.generate(input_ids=query, attention_mask=query_mask, do_sample=True, temperature=1.0, top_k=0,
                                 top_p=1.0, max_new_tokens=args.new_tokens, eos_token_id=tokenizer.eos_token_id,
                                 pad_token_id=tokenizer.pad_token_id)
        model.train()
        sync(device)
        generated = time.perf_counter()
        response = out[:, query.size(1):]
        is_eos = (response == tokenizer.eos_token_id).long()
        response_mask = ((is_eos.cumsum(1) - is_eos) == 0).long()
        full_mask = torch.cat([query_mask.long(), response_mask], dim=1)
        n = response.size(1)
        for _ in range(args.epochs):
            for lo in range(0, args.batch, minibatch):
                ids, mask, width = trimmed(out[lo:lo + minibatch], full_mask[lo:lo + minibatch], n)
                logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                               logits_to_keep=width + 1, use_cache=False).logits[:, :-1].float()
                targets, target_mask = ids[:, -width:], mask[:, -width:]
                logp = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
                loss = -(logp * target_mask).sum() / target_mask.sum()
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        sync(device)
        done = time.perf_counter()
        if rep >= args.warmup:
            generate_s.append(generated - start)
            update_s.append(done - generated)
            lengths.append(float(response_mask.sum(1).float().mean()))
    generate, update = statistics.median(generate_s), statistics.median(update_s)
    floor = statistics.median(g + u for g, u in zip(generate_s, update_s))
    return {"system": "floor", "floor_step_s": round(floor, 3), "generate_s": round(generate, 3),
            "update_s": round(update, 3), "samples_per_s": round(args.batch / floor, 3),
            "response_length": round(statistics.mean(lengths), 2), "peak_rss_mb": peak_rss_mb(),
            "peak_gpu_mb": peak_gpu_mb(), "reps": args.reps, "threads": torch.get_num_threads(),
            "step_s_each": [round(g + u, 3) for g, u in zip(generate_s, update_s)]}


def trimmed(ids, mask, response_width: int):
    """(ids, mask, response width) without the leading prompt columns and trailing response columns that
    are padding in every row of this minibatch, as our update loop's trim_padding."""
    real = mask.bool().any(dim=0)
    prompt_width = ids.size(1) - response_width
    first = int(real[:prompt_width].nonzero()[0]) if bool(real[:prompt_width].any()) else prompt_width
    kept = real[prompt_width:].nonzero()
    width = int(kept[-1]) + 1 if len(kept) else 1
    end = prompt_width + width
    return ids[:, first:end], mask[:, first:end], width


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def worker_args(args) -> list[str]:
    return ["--worker", *settings_argv(args), "--reps", str(args.reps), "--warmup", str(args.warmup)]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_settings_arguments(p)
    p.add_argument("--reps", type=int, default=3, help="timed repetitions (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    p.add_argument("--threads", type=int, default=None, help="torch threads in the worker (default: one per core)")
    p.add_argument("--quick", action="store_true", help="tiny model, batch 4, 8 tokens, 1 thread: a smoke run")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parse_quick(parser, argv, QUICK)
    single_worker_main(__file__, args, measure_floor, worker_args(args), "floor")


if __name__ == "__main__":
    main()
