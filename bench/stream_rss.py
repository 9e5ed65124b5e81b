"""Peak RSS of the file commands on a short and a long input: they read and write line by line, so
the long file's peak should stay within 10 % of the short one's (ratio <= 1.10).

    .venv/bin/python bench/stream_rss.py                  # 1,000 vs 100,000 lines, every command
    .venv/bin/python bench/stream_rss.py --quick          # 100 vs 2,000 lines, a smoke run
    .venv/bin/python bench/stream_rss.py --commands score,stats --code /tmp/old-checkout   # another version

Prints one JSON object. Each measurement is a fresh process (harness.run_worker) that calls the
command's own `main` with its command line and reports its ru_maxrss and wall time. The inputs are
made in a temporary folder, line i of each size the same: pairs for `rlhf.score`, two systems'
generations of GSM8K-style answers for `judge`, `gsm8k` and `accuracy`, two judgments files for
`stats`, `report` and `agreement`, prompts for `generate`. The models are tiny random Llamas (hidden
64, 2 layers, the SmolLM2 tokenizer): the tests' reward-model export for `score` and `judge`, and
`--model tiny` answering with one new token for `generate`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from harness import emit, load_now, machine_record, parse_quick, peak_rss_mb, run_worker

SCRIPT = Path(__file__).resolve()
SIZES = (1000, 100_000)
QUICK = ["--sizes", "100,2000", "--runs", "1"]
TARGET_RATIO = 1.10


def commands(files: dict, out: Path) -> dict[str, tuple[str, list[str]]]:
    """command name -> (module whose main runs it, its arguments) for one input size."""
    rm, evaluate = str(files["rm"]), "rlhf.evaluate.__main__"
    return {
        "score": ("rlhf.score", ["--model", rm, "--input", files["pairs"], "--output", str(out / "scored.jsonl"),
                                 "--batch-size", "64"]),
        "judge": (evaluate, ["judge", "--a", files["gen_a"], "--b", files["gen_b"], "--judge", "reward_model",
                             "--reward-model", rm, "--out", str(out / "judged.jsonl"), "--batch-size", "64"]),
        "stats": (evaluate, ["stats", "--judgments", files["judgments"]]),
        "agreement": (evaluate, ["agreement", "--predicted", files["judgments"], "--reference", files["reference"]]),
        "report": (evaluate, ["report", "--judgments", files["judgments"], "--out", str(out / "report")]),
        "gsm8k": (evaluate, ["gsm8k", "--generations", files["gen_a"]]),
        "accuracy": (evaluate, ["accuracy", "--generations", files["gen_a"], "--reward", "numeric_match",
                                "--scored", str(out / "accuracy.jsonl")]),
        "generate": (evaluate, ["generate", "--model", "tiny", "--prompts-file", files["prompts"],
                                "--out", str(out / "generated.jsonl"), "--max-new-tokens", "1", "--batch-size", "64"]),
    }


COMMANDS = ("score", "judge", "stats", "agreement", "report", "gsm8k", "accuracy", "generate")


# ------------------------------------------------------------------ inputs (stdlib only, line i fixed)

def _question(i: int) -> str:
    return f"Question {i}: a shop sells {i % 97 + 3} apples a day for {i % 13 + 2} days. How many apples is that?"


def _answer(i: int) -> int:
    return (i % 97 + 3) * (i % 13 + 2)


def write_lines(path: Path, rows) -> str:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return str(path)


def make_inputs(folder: Path, n: int) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    winners = ("a", "b", "tie")

    def generation(i: int, model: str, right: bool) -> dict:
        answer = _answer(i) + (0 if right else 1)
        return {"id": f"q{i}", "dataset": "gsm8k", "prompt": [{"role": "user", "content": _question(i)}],
                "response": f"{i % 97 + 3} times {i % 13 + 2} is {answer}.\n#### {answer}", "model": model,
                "reference": str(_answer(i)), "metadata": {"id": f"q{i}", "answer": _answer(i), "level": i % 3}}

    def judgment(i: int, shift: int) -> dict:
        return {"id": f"q{i}", "dataset": f"set{i % 4}", "model_a": "sft", "model_b": "ppo",
                "winner": winners[(i + shift) % 3], "judge": "reward_model", "length_a": 40 + i % 50,
                "length_b": 30 + i % 70, "score_a": (i % 101) / 50 - 1, "score_b": (i % 89) / 44 - 1}

    return {
        "pairs": write_lines(folder / "pairs.jsonl", ({"prompt": _question(i), "chosen": f"It is {_answer(i)} apples.",
                                                       "rejected": "No idea, sorry." + " Really." * (i % 5)}
                                                      for i in range(n))),
        "gen_a": write_lines(folder / "gen_a.jsonl", (generation(i, "sft", i % 3 > 0) for i in range(n))),
        "gen_b": write_lines(folder / "gen_b.jsonl", (generation(i, "ppo", i % 2 > 0) for i in range(n))),
        "judgments": write_lines(folder / "judgments.jsonl", (judgment(i, 0) for i in range(n))),
        "reference": write_lines(folder / "reference.jsonl", (judgment(i, i % 2) for i in range(n))),
        "prompts": write_lines(folder / "prompts.jsonl", ({"id": f"p{i}", "prompt": _question(i)} for i in range(n))),
    }


# ------------------------------------------------------------------ workers

def make_reward_model(args) -> dict:
    """The tests' tiny reward model (tests/test_score.py), exported as an HF folder."""
    from rlhf.reward_model.module import RewardModule

    tiny = {"source": "tiny", "tokenizer": "embedded:smollm2-135m", "dtype": "float32",
            "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128, "seed": 0}}
    module = RewardModule(model=tiny, max_length=128, min_prompt_tokens=32)
    module.configure_model()
    return {"model": str(module.export(Path(args.out) / "model"))}


def run_command(args) -> dict:
    """One command's `main` on its command line, in this (fresh) process."""
    import importlib

    main = importlib.import_module(args.module).main
    started = time.perf_counter()
    main(args.argv)
    return {"wall_s": round(time.perf_counter() - started, 2), "peak_rss_mb": peak_rss_mb()}


# ------------------------------------------------------------------ orchestration

def measure(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="stream_rss-", dir=args.workdir))
    try:
        rm = run_worker(SCRIPT, _worker_args(args, "make_rm", out=str(workdir)), threads=args.threads)["model"]
        inputs = {n: {"rm": rm, **make_inputs(workdir / f"in{n}", n)} for n in args.sizes}
        results: dict = {}
        for name in args.commands:
            per_size = results.setdefault(name, {})
            for run in range(args.runs):
                for n in args.sizes:
                    out = workdir / f"out{n}-{name}-{run}"
                    module, argv = commands(inputs[n], out)[name]
                    load = load_now()
                    result = run_worker(SCRIPT, _worker_args(args, "run", module=module) + ["--", *argv],
                                        timeout=args.timeout, threads=args.threads)
                    result["load_1min_before"] = load
                    per_size.setdefault(str(n), []).append(result)
                    print(f"[{name} {n} run {run + 1}] {json.dumps(result)}", file=sys.stderr, flush=True)
                    shutil.rmtree(out, ignore_errors=True)
        return {"commands": {name: summarise(per_size, args.sizes) for name, per_size in results.items()}}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def summarise(per_size: dict, sizes: list[int]) -> dict:
    """Median peak RSS and wall time per size, and the long file's peak over the short one's."""
    def median(values):
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    out = {str(n): {"peak_rss_mb": median([r["peak_rss_mb"] for r in per_size[str(n)]]),
                    "wall_s": median([r["wall_s"] for r in per_size[str(n)]]),
                    "runs": per_size[str(n)]} for n in sizes}
    small, large = out[str(min(sizes))]["peak_rss_mb"], out[str(max(sizes))]["peak_rss_mb"]
    out["rss_ratio"] = round(large / small, 3)
    out["within_target"] = out["rss_ratio"] <= TARGET_RATIO
    return out


def _worker_args(args, worker: str, **options) -> list[str]:
    argv = ["--worker", worker]
    if args.code:
        argv += ["--code", args.code]
    for key, value in options.items():
        argv += [f"--{key}", value]
    return argv


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=lambda s: sorted(int(x) for x in s.split(",")), default=list(SIZES),
                   help="input lengths in lines, comma-separated (the ratio is largest over smallest)")
    p.add_argument("--commands", type=lambda s: s.split(","), default=list(COMMANDS),
                   help=f"comma-separated subset of {','.join(COMMANDS)}")
    p.add_argument("--runs", type=int, default=1, help="measurements per command and size (median reported)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (OMP_NUM_THREADS)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    p.add_argument("--workdir", help="where the temporary inputs go (default: the system temp folder)")
    p.add_argument("--code", help="a checkout whose rlhf package the workers import (default: this one)")
    p.add_argument("--quick", action="store_true", help="small sizes, a smoke run: " + " ".join(QUICK))
    p.add_argument("--worker", choices=("make_rm", "run"), help=argparse.SUPPRESS)
    p.add_argument("--module", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("argv", nargs="*", help=argparse.SUPPRESS)
    return p


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    args = parse_quick(make_parser, argv, QUICK, mark_quick=True)
    unknown = set(args.commands) - set(COMMANDS)
    if unknown:
        make_parser().error(f"unknown commands {sorted(unknown)}; choose from {', '.join(COMMANDS)}")
    if len(args.sizes) < 2 or min(args.sizes) < 1 or args.runs < 1:
        make_parser().error("--sizes needs two or more positive lengths and --runs at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.code:
        sys.path.insert(0, str(Path(args.code).resolve()))
    if args.worker:
        emit(make_reward_model(args) if args.worker == "make_rm" else run_command(args))
        return
    machine = machine_record()
    started = time.perf_counter()
    result = measure(args)
    settings = {k: v for k, v in vars(args).items() if k not in ("worker", "module", "out", "argv")}
    print(json.dumps({"machine": machine, "load_after": load_now(), "wall_s": round(time.perf_counter() - started, 1),
                      "settings": settings, "target_ratio": TARGET_RATIO, **result}, indent=2))


if __name__ == "__main__":
    main()
