"""Measuring kit shared by the bench scripts (stdlib only, so the orchestrating process stays small).

Every measured system runs in its own subprocess: peak RSS (ru_maxrss) then belongs to that system
alone, and one system's allocator state or thread pool never leaks into the next one's timing. A
worker prints exactly one `BENCH_RESULT {json}` line; everything else it prints is ignored.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

RESULT_TAG = "BENCH_RESULT "
REPO_ROOT = Path(__file__).resolve().parent.parent
VERSIONED = ("torch", "transformers", "lightning", "peft", "accelerate", "trl")


def emit(result: dict) -> None:
    """The worker's answer to run_worker (stdout, one line)."""
    print(RESULT_TAG + json.dumps(result), flush=True)


def run_worker(script: str | Path, args: list[str], timeout: float | None = None, threads: int | None = None) -> dict:
    """Run `python script *args` as a fresh process and return the dict it emitted.

    threads: intra-op threads of the worker (OMP_NUM_THREADS); None keeps torch's default (one per
    core). On a shared machine one thread can be many times faster than two that wait on each other.
    """
    command = [sys.executable, str(script), *args]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG):])
            result["process_wall_s"] = round(time.perf_counter() - started, 2)
            return result
    tail = (proc.stderr or proc.stdout)[-4000:]
    raise RuntimeError(f"worker {' '.join(command[1:])} gave no result (exit {proc.returncode}):\n{tail}")


def interleaved_runs(script: str | Path, jobs: list[tuple[str, list[str]]], runs: int, timeout: float | None = None,
                     threads: int | None = None) -> dict[str, list[dict]]:
    """Results per job label, `runs` each. Every run goes through all jobs before the next starts, so a
    change in machine load hits every system alike; each result keeps the load it started under."""
    results: dict[str, list[dict]] = {}
    for run in range(runs):
        for label, job in jobs:
            load = load_now()
            result = run_worker(script, job, timeout=timeout, threads=threads)
            result["load_1min_before"] = load
            results.setdefault(label, []).append(result)
            print(f"[run {run + 1}/{runs}] {label}: {json.dumps(result)}", file=sys.stderr, flush=True)
    return results


def peak_rss_mb() -> float:
    """Peak resident set of this process so far (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def peak_gpu_mb() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def steady_step_s(durations: list[float], warmup: int) -> float:
    """Median duration of the steps after the first `warmup` (lazy init, allocator growth)."""
    timed = durations[warmup:]
    if not timed:
        raise ValueError(f"no timed step: {len(durations)} steps ran, {warmup} are warm-up")
    return statistics.median(timed)


MIN_RUNS, MIN_WARMUP = 5, 1
"""Defaults of every comparison script: a ratio is quoted as the median of >= 5 paired runs, each timed
after >= 1 untimed step (lazy initialisation and allocator growth land in the first step)."""


def spread(values: list[float]) -> dict:
    """Median with the range and every value: a ratio's spread over runs is part of the figure."""
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "each": [round(v, 3) for v in values]}


def paired_ratios(numerator: list[dict], denominator: list[dict], keys: tuple[str, ...]) -> dict:
    """key -> spread of numerator/denominator computed run by run. Run i of both systems ran back to
    back under the same load, so the per-run ratio cancels what load did to both; a ratio of medians
    taken from different runs does not."""
    if len(numerator) != len(denominator):
        raise ValueError(f"paired ratios need as many runs on each side: {len(numerator)} vs {len(denominator)}")
    return {key: spread([n[key] / d[key] for n, d in zip(numerator, denominator)])
            for key in keys if all(n.get(key) and d.get(key) for n, d in zip(numerator, denominator))}


def run_count_note(runs: int, warmup: int) -> str | None:
    """Why these settings fall short of a quotable comparison (None when they do not); smoke runs
    may go below, and the report says so next to the figures."""
    if runs >= MIN_RUNS and warmup >= MIN_WARMUP:
        return None
    note = (f"--runs {runs} --warmup {warmup}: below the standard of >= {MIN_RUNS} paired runs after >= {MIN_WARMUP} "
            "untimed step; not a figure to quote")
    print(f"warning: {note}", file=sys.stderr, flush=True)
    return note


def median_summary(runs: list[dict]) -> dict:
    """Median over runs of every numeric field the runs share."""
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and all(isinstance(r.get(k), (int, float)) for r in runs)]
    return {k: round(statistics.median(r[k] for r in runs), 4) for k in keys}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_record() -> dict:
    """Date, machine and versions: what RESULTS.md needs next to every figure."""
    record = {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": _cpu_model(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in VERSIONED},
    }
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        record["ram_gb"] = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return record


def load_now() -> float:
    return round(os.getloadavg()[0], 2)


# ------------------------------------------------------------------------- script entry points
# Each bench script is both the orchestrator and its own workers (run_worker runs it with --worker).

def parse_quick(make_parser, argv: list[str] | None, quick: list[str], mark_quick: bool = False) -> argparse.Namespace:
    """Parse argv with `--quick` replaced by the script's smoke-run options; options written beside
    it come after them, so they win. mark_quick: keep `quick: true` in the parsed (and reported)
    settings, which the replacement would otherwise reset."""
    argv = sys.argv[1:] if argv is None else argv
    args = make_parser().parse_args(argv)
    if args.quick:
        args = make_parser().parse_args([*quick, *(a for a in argv if a != "--quick")])
        args.quick = mark_quick or args.quick
    return args


def single_worker_main(script: str | Path, args: argparse.Namespace, work, worker_argv: list[str], key: str) -> None:
    """Entry of a script that measures one system in one worker: the report is the worker's result
    under `key`, beside the machine record and the settings."""
    if args.worker:
        emit(work(args))
        return
    result = run_worker(script, worker_argv, threads=args.threads)
    print(json.dumps({"machine": machine_record(), "settings": vars(args), key: result}, indent=2))


def multi_worker_main(args: argparse.Namespace, workers: dict, measure) -> None:
    """Entry of a script that compares systems (`--worker SYSTEM` picks one of `workers`): `measure`
    spawns the workers; the report brackets it with the machine record before and the load after,
    since load on a shared machine moves every figure."""
    if args.worker:
        emit(workers[args.worker](args))
        return
    machine = machine_record()
    started = time.perf_counter()
    result = measure(args)
    settings = {k: v for k, v in vars(args).items() if k != "worker"}
    print(json.dumps({"machine": machine, "load_after": load_now(), "wall_s": round(time.perf_counter() - started, 1),
                      "settings": settings, **result}, indent=2))
