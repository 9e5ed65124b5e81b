"""SFT training throughput on CPU, fp32, through the project's own SFTModule and a Lightning fit.

    .venv/bin/python bench/sft_throughput.py                       # tiny model, seconds
    .venv/bin/python bench/sft_throughput.py --model smollm2-135m  # the 135M figure (LoRA r16, all linear)

Prints one JSON object. Sequences are fixed-length random token ids with every position trained,
so `tokens_per_s = batch * seq_len / median step time` counts exactly the tokens a step processes.
A step is forward + backward + clip + optimizer step (timed between Lightning's batch hooks); the
first `--warmup` steps are not timed. Model, LoRA and optimizer settings come from configs/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from importlib import metadata
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir

import rlhf.config.store  # noqa: F401  (the config schemas Hydra composes onto)
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from rlhf.data.collate import CausalLMCollator
from rlhf.sft.module import SFTModule

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class StepTimer(L.Callback):
    def __init__(self, warmup: int):
        self.warmup = warmup
        self.times: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step > self.warmup:
            self.times.append(time.perf_counter() - self._start)


def _configs(model: str, peft: str) -> tuple[dict, dict | None, dict, float]:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}", f"peft={peft}", "stage=sft", "trainer=cpu"])
    model_spec = OmegaConf.to_container(cfg.model, resolve=True)
    peft_cfg = OmegaConf.to_container(cfg.peft, resolve=True)
    optim = OmegaConf.to_container(cfg.stage.module.optim, resolve=True)
    return model_spec, peft_cfg, optim, float(cfg.trainer.gradient_clip_val)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}; {os.cpu_count()} logical CPUs; torch threads {torch.get_num_threads()}; {platform.platform()}"


def run(model: str, peft: str, batch: int, seq_len: int, steps: int, warmup: int, seed: int) -> dict:
    L.seed_everything(seed, verbose=False)
    model_spec, peft_cfg, optim, clip = _configs(model, peft)
    module = SFTModule(model_spec, peft_cfg, optim)
    generator = torch.Generator().manual_seed(seed)
    # Ids from 3 upward: 0-2 are pad / bos / eos in the SmolLM2 tokenizer.
    ids = torch.randint(3, len(module.tokenizer), (batch * (steps + warmup), seq_len), generator=generator)
    examples = [{"input_ids": row.tolist(), "labels": row.tolist()} for row in ids]
    loader = DataLoader(examples, batch_size=batch, shuffle=False,
                        collate_fn=CausalLMCollator(module.tokenizer.pad_token_id))
    timer = StepTimer(warmup)
    trainer = L.Trainer(accelerator="cpu", devices=1, precision="32-true", max_steps=steps + warmup,
                        gradient_clip_val=clip, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer])
    trainer.fit(module, train_dataloaders=loader)
    step_time = statistics.median(timer.times)
    trainable = sum(p.numel() for p in module.model.parameters() if p.requires_grad)
    return {
        "tokens_per_s": round(batch * seq_len / step_time, 1),
        "samples_per_s": round(batch / step_time, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # Linux: KiB
        "step_time_s": round(step_time, 4),
        "step_time_s_range": [round(min(timer.times), 4), round(max(timer.times), 4)],
        "step_time_s_all": [round(t, 4) for t in timer.times],
        "timed_steps": len(timer.times),
        "model": model,
        "peft": peft,
        "trainable_params": trainable,
        "batch": batch,
        "seq_len": seq_len,
        "precision": "fp32",
        "torch": torch.__version__,
        "transformers": metadata.version("transformers"),
        "lightning": metadata.version("lightning"),
        "peft_version": metadata.version("peft"),
        "machine": _machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="a configs/model option: tiny (default) or smollm2-135m")
    parser.add_argument("--peft", default="lora", help="a configs/peft option: lora (thesis r16 a32) or none")
    parser.add_argument("--batch", type=int, default=4, help="thesis Table 3 per-device batch")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median and range reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(run(args.model, args.peft, args.batch, args.seq_len, args.steps, args.warmup, args.seed)))


if __name__ == "__main__":
    main()
