"""Measuring kit shared by the bench scripts (stdlib only, so the orchestrating process stays small).

Every measured system runs in its own subprocess: peak RSS (ru_maxrss) then belongs to that system
alone, and one system's allocator state or thread pool never leaks into the next one's timing. A
worker prints exactly one `BENCH_RESULT {json}` line; everything else it prints is ignored.
"""

from __future__ import annotations

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
