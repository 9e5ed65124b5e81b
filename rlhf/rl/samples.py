"""The sample table of a run (prompt, response, reward): JSONL in the run dir, always, and a table
for any logger that shows one (wandb). The pipeline's over-optimisation curve reads the JSONL."""

from __future__ import annotations

import json
from pathlib import Path


def log_samples(trainer, loggers, iteration: int, prompts, texts, raw, reward_rows=None, metadata=None) -> None:
    """reward_rows: per response {rewards: {part: score}, details: {part: {...}}} when the reward has
    several parts or details (rlhf.rewards.weighted_sum.RewardResult.rows); metadata: the prompt's
    metadata (reference answers, ids), kept so a samples file can be graded again later."""
    if not trainer.is_global_zero:
        return
    rows = [[prompt[-1]["content"], text, float(r)] for prompt, text, r in zip(prompts, texts, raw.tolist())]
    path = Path(trainer.default_root_dir) / "samples.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        for i, (prompt, response, reward) in enumerate(rows):
            record = {"step": iteration, "prompt": prompt, "response": response, "reward": reward}
            if reward_rows is not None:
                record.update(rewards=reward_rows[i]["rewards"], details=reward_rows[i]["details"])
            if metadata and set(metadata[i]) - {"id"}:
                record["metadata"] = metadata[i]
            handle.write(json.dumps(record, default=str) + "\n")
    for logger in loggers:
        if hasattr(logger, "log_table"):
            logger.log_table(key="samples", columns=["prompt", "response", "reward"], data=rows, step=iteration)
