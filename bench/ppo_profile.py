"""Where one PPO step of our PPOModule spends its time (profile before optimising).

Runs the PPO benchmark settings (bench/ppo_settings.py) through a Lightning fit, profiles one step
after `--warmup` untimed steps with cProfile, and attributes its wall time to the phases of
the RL stage (rlhf/rl/) by cumulative time, splitting the shared helpers by caller:
generate / scoring / old-policy log-probs / reference log-probs / critic values / GAE and stats /
minibatch forwards / backward / optimizer steps. `python_self_s` is the self time of all
Python-level functions (interpreter overhead, module dispatch, HF modeling glue); `native_s` is the
time inside C/C++ calls (torch kernels). cProfile inflates Python-heavy code somewhat; `--compare`
times one more, unprofiled step to show by how much.

    .venv/bin/python bench/ppo_profile.py [--critic separate|value_head] [--quick]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time

from harness import parse_quick, peak_rss_mb, single_worker_main
from ppo_settings import add_settings_arguments, model_overrides, prompts_needed

QUICK = ["--model", "tiny", "--batch", "4", "--new-tokens", "8", "--threads", "1"]

# phase -> (file suffix, function, caller function or None for all callers)
PHASES = {
    "step_total": ("rlhf/rl/module.py", "training_step", None),
    "rollout_generate": ("rlhf/rl/rollout.py", "generate", None),
    "decode_responses": ("rlhf/rl/rollout_step.py", "response_texts", None),
    "reward_score": ("rlhf/rewards/word_count.py", "score", None),
    "experience_total": ("rlhf/rl/experience_builder.py", "build_experience", None),
    "old_logprobs_forward": ("rlhf/rl/policy.py", "logprobs", "build_experience"),
    "reference_forward": ("rlhf/rl/rollout.py", "forward_response", "reference_logprobs"),
    "critic_values_rollout": ("rlhf/rl/policy.py", "values", "build_experience"),
    "gae": ("rlhf/rl/advantages.py", "gae_advantages", None),
    "updates_total": ("rlhf/rl/update.py", "run", None),
    "minibatch_loss_forward": ("rlhf/rl/update.py", "_losses", None),
    "actor_forward_train": ("rlhf/rl/policy.py", "logprobs", "_losses"),
    "critic_forward_train": ("rlhf/rl/policy.py", "values", "_losses"),
    "backward": ("lightning/pytorch/core/module.py", "manual_backward", None),
    "optimizer_steps_and_clip": ("rlhf/rl/update.py", "_step", None),
}


def _matches(key, suffix: str, name: str) -> bool:
    filename, _, function = key
    return function == name and filename.replace("\\", "/").endswith(suffix)


def phase_times(stats: pstats.Stats) -> dict[str, float]:
    out = {}
    for phase, (suffix, name, caller) in PHASES.items():
        total = 0.0
        for key, (_, _, _, cumulative, callers) in stats.stats.items():
            if not _matches(key, suffix, name):
                continue
            if caller is None:
                total += cumulative
            else:
                total += sum(v[3] for c, v in callers.items() if c[2] == caller)
        out[phase] = round(total, 3)
    return out


def python_vs_native(stats: pstats.Stats) -> dict[str, float]:
    """Self time of Python functions vs builtins (cProfile files C calls under '~')."""
    python = sum(v[2] for k, v in stats.stats.items() if k[0] != "~")
    native = sum(v[2] for k, v in stats.stats.items() if k[0] == "~")
    return {"python_self_s": round(python, 3), "native_s": round(native, 3)}


def top_native(stats: pstats.Stats, n: int = 12) -> list[dict]:
    rows = sorted(((k, v) for k, v in stats.stats.items() if k[0] == "~"), key=lambda kv: -kv[1][2])[:n]
    return [{"call": k[2], "self_s": round(v[2], 3), "calls": v[1]} for k, v in rows]


def profile_worker(args) -> dict:
    import lightning as L

    from lightning_run import GPU, fit_stage

    class ProfileOneStep(L.Callback):
        def __init__(self, index: int):
            self.index, self.profiler, self.wall = index, cProfile.Profile(), None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == self.index:
                self.started = time.perf_counter()
                self.profiler.enable()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == self.index:
                self.profiler.disable()
                self.wall = time.perf_counter() - self.started

    steps = args.warmup + 1 + int(args.compare)  # warm-up, the profiled step, optionally an unprofiled one
    overrides = model_overrides(args) + [
        "stage=ppo", "peft=lora", "data=prompts_demo", f"data.batch_size={args.batch}",
        f"data.sources.0.n={prompts_needed(args.batch, steps)}", f"stage.module.rollout.max_new_tokens={args.new_tokens}",
        f"stage.module.update.epochs={args.epochs}", f"stage.module.critic.kind={args.critic}",
        "stage.module.log_samples_every_n_steps=0", f"trainer.max_steps={steps}"] + (GPU if args.gpu else [])
    probe = ProfileOneStep(args.warmup)
    _, _, durations = fit_stage(overrides, callbacks=[probe])
    stats = pstats.Stats(probe.profiler, stream=io.StringIO())
    unprofiled = {"unprofiled_step_s": round(durations[-1], 3)} if args.compare else {}
    return {"system": f"ours[{args.critic}]", "profiled_step": args.warmup, "profiled_step_wall_s": round(probe.wall, 3),
            **unprofiled, "phases_s": phase_times(stats), **python_vs_native(stats),
            "top_native_self_s": top_native(stats), "peak_rss_mb": peak_rss_mb()}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_settings_arguments(p)
    p.add_argument("--critic", default="separate", choices=("separate", "value_head"))
    p.add_argument("--warmup", type=int, default=1, help="unprofiled steps before the profiled one")
    p.add_argument("--compare", action="store_true", help="also time one unprofiled step after the profiled one")
    p.add_argument("--threads", type=int, default=None, help="torch threads in the worker (default: one per core)")
    p.add_argument("--quick", action="store_true", help="tiny model, batch 4, 8 tokens")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_quick(parser, argv, QUICK)
    forwarded = [a for a in argv if a not in ("--quick",)] + (QUICK if "--quick" in argv else [])
    single_worker_main(__file__, args, profile_worker, ["--worker", *forwarded], "profile")


if __name__ == "__main__":
    main()
