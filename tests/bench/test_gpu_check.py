"""bench/gpu_check.sh, the one-call GPU check, exercised where CI runs: `--dry-run` is the same
sequence on the CPU (tiny model, fp32 runs with bf16 twins, the benchmark's smallest setting), so
the script that only a lent GPU machine runs for real cannot rot unseen."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "gpu_check.sh"
DRY_STEPS = ["env", "model", "rm_data", "sft", "sft_bf16", "sft_agreement", "reward", "reward_bf16",
             "reward_agreement", "ppo", "bench"]


def _gpu_check_module():
    name = "bench_gpu_check"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "bench" / "gpu_check.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module   # the dataclasses in it resolve their annotations through sys.modules
        spec.loader.exec_module(module)
    return sys.modules[name]


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_dry_run_writes_every_step_ok_finite_losses_and_the_bf16_fp32_agreement(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), GPU_CHECK_WORK=str(tmp_path / "work"), PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    result_file = out / "gpu_check.json"
    assert result_file.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(result_file.read_text())
    failed = {s["name"]: (s.get("error"), s.get("tail", [])[-15:]) for s in result["steps"] if s["status"] != "ok"}
    assert not failed, json.dumps(failed, indent=1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert result["mode"] == "dry-run" and result["finished"] and result["ok"]
    assert [s["name"] for s in result["steps"]] == DRY_STEPS
    assert (out / "gpu_check.log").is_file()

    finite = {c["stage"]: c for c in result["checks"]["finite"]}
    assert set(finite) == {"sft", "reward", "ppo"}
    for stage, check in finite.items():
        assert check["ok"] and check["n_values"] > 0, (stage, check)
        assert "train/loss" in check["keys"] or "train/policy_loss" in check["keys"], (stage, check["keys"])
        assert all(_finite(v) for v in check["last"].values()), (stage, check["last"])

    agreement = {c["stage"]: c for c in result["checks"]["agreement"]}
    assert set(agreement) == {"sft", "reward"}
    for stage, check in agreement.items():
        assert check["metric"] == "train/loss" and check["step"] == 0, check
        assert _finite(check["bf16"]) and _finite(check["fp32"]) and _finite(check["rel_diff"]), check
        assert check["rtol"] == 2e-2 and check["ok"], check
    assert {s["name"]: s["precision"] for s in result["steps"] if "precision" in s} == {
        "sft": "32", "sft_bf16": "bf16-true", "reward": "32", "reward_bf16": "bf16-true", "ppo": "32"}

    ppo = next(s for s in result["steps"] if s["name"] == "ppo")
    assert "=reward_model" in ppo["command"], "PPO should score with the reward model trained two steps before"
    assert "strategy=fsdp2" in ppo["command"] and "trainer.devices=1" in ppo["command"]
    model = result["model"]
    assert model["train_args"] == ["model=tiny"]
    assert (Path(model["random_init_folder"]) / "model.safetensors").is_file()
    bench = result["checks"]["bench"]
    assert bench["settings"]["model"] == "hub" and bench["settings"]["model_source"] == model["random_init_folder"]
    assert bench["median"] and all(_finite(m["step_s"]) and m["step_s"] > 0 for m in bench["median"].values())


def test_gpu_plan_fits_the_nine_minute_device_call():
    gpu_check = _gpu_check_module()
    steps = gpu_check.plan("gpu")
    assert [s.name for s in steps][:3] == ["install", "env", "model"]
    assert {"sft_fp32", "reward_fp32", "sft_agreement", "reward_agreement", "ppo", "bench"} <= {s.name for s in steps}
    assert len({s.group for s in steps}) == len(steps), "on the GPU every step runs alone"
    text = SCRIPT.read_text()
    assert "GPU_CHECK_BUDGET_S:-500" in text and "budget + 20" in text
    assert sum(s.slot_s for s in steps) <= 500 and 500 + 20 + 5 < 9 * 60
    dry = gpu_check.plan("dry")
    slots = {}
    for s in dry:
        slots[s.group] = max(slots.get(s.group, 0), s.slot_s)
    assert sum(slots.values()) <= 600


def test_carry_list_pins_the_project_versions_and_leaves_the_cuda_stack_to_the_image():
    gpu_check = _gpu_check_module()
    specs = dict(s.split("==") for s in gpu_check.carry_list())
    pins = gpu_check.pyproject_pins()
    for name in ("transformers", "lightning", "peft", "hydra-core", "omegaconf", "datasets", "tokenizers", "trl"):
        assert specs[name] == pins[name], name
    assert "antlr4-python3-runtime" in specs   # hydra's dependency, built from its sdist by --prepare
    assert not [n for n in specs if n in ("torch", "numpy", "triton") or n.startswith(("nvidia-", "cuda-"))]
    assert gpu_check.torch_pin() == pins["torch"]


def test_script_parses_and_rejects_unknown_options():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    usage = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 0 and "--prepare" in usage.stdout and "--dry-run" in usage.stdout
    bad = subprocess.run(["bash", str(SCRIPT), "--nope"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2
