"""The sample table of a run (prompt, response, reward): JSONL in the run dir, always, and a table
for any logger that shows one (wandb). The pipeline's over-optimisation curve reads the JSONL."""

from __future__ import annotations

import json
from pathlib import Path


def log_samples(trainer, loggers, iteration: int, prompts, texts, raw) -> None:
    if not trainer.is_global_zero:
        return
    rows = [[prompt[-1]["content"], text, float(r)] for prompt, text, r in zip(prompts, texts, raw.tolist())]
    path = Path(trainer.default_root_dir) / "samples.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        for prompt, response, reward in rows:
            handle.write(json.dumps({"step": iteration, "prompt": prompt, "response": response, "reward": reward}) + "\n")
    for logger in loggers:
        if hasattr(logger, "log_table"):
            logger.log_table(key="samples", columns=["prompt", "response", "reward"], data=rows, step=iteration)
