"""Score a file of preference pairs with a saved reward model, or with a DPO export's implicit reward.

    python -m rlhf.score --model runs/reward/.../model --input pairs.jsonl --output scored.jsonl

A DPO export (rlhf_metadata.json stage "dpo") scores each response by β·(log π − log π_ref), its
policy against the base it recorded (rlhf.dpo.implicit_reward; docs/algorithms.md §3.1).

Input lines are {"prompt": str | messages, "chosen": str, "rejected": str} or HH-RLHF transcripts
{"chosen": "\\n\\nHuman: ...", "rejected": ...}. Output lines are the input plus score_chosen and
score_rejected; the command prints {"n", "skipped", "pairwise_accuracy", "mean_margin"} as JSON, with
a tie counted as wrong (docs/methods.md §3.8 [default]). A transcript pair whose two sides do not
share the dialogue before the last Assistant turn compares different contexts: it is skipped and
counted, the rule training applies.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rlhf.data.jsonl import iter_jsonl, write_jsonl_atomic
from rlhf.data.sources import hh_rlhf, pairs
from rlhf.core.errors import ConfigError, DataError, exit_on_error
from rlhf.dpo.implicit_reward import is_dpo_export, load_implicit_reward
from rlhf.reward_model.metrics import PairwiseAccuracy
from rlhf.reward_model.scoring import OUTPUTS, load_reward_model


def read_pairs(path: str | Path) -> tuple[list[dict], list[list[dict]], list[str], list[str], int]:
    """(raw records, prompts, chosen, rejected, skipped); the format is picked per line by its
    `prompt` key."""
    records, prompts, chosen, rejected, skipped = [], [], [], [], 0
    for number, record in iter_jsonl(path):
        adapter = pairs if isinstance(record, dict) and "prompt" in record else hh_rlhf
        groups = list(adapter(record, (str(path), number)))
        if not groups:
            skipped += 1
            continue
        (group,) = groups
        records.append(record)
        prompts.append(group["prompt"])
        chosen.append(group["responses"][0])
        rejected.append(group["responses"][1])
    if not records:
        what = f"all {skipped} pairs were skipped" if skipped else "empty file"
        raise DataError(f"no pairs to score ({what})", source=str(path))
    return records, prompts, chosen, rejected, skipped


def load_scorer(model: str | Path, output: str = "logit", batch_size: int = 16):
    """A saved RM, or a DPO export's implicit reward (a log-ratio, so only `logit` output)."""
    if not is_dpo_export(model):
        return load_reward_model(model, output=output, batch_size=batch_size)
    if output != "logit":
        raise ConfigError("--output-type", f"a DPO export scores by its implicit reward β·log-ratio, which has no "
                                           f"{output!r} form; use --output-type logit")
    return load_implicit_reward(model, batch_size=batch_size)


def score(prompts: list, responses: list[str], model: str | Path, output: str = "logit",
          batch_size: int = 16) -> torch.Tensor:
    """One score per (prompt, response); prompts are strings or message lists."""
    return load_scorer(model, output, batch_size).score(prompts, responses)


def score_pairs_file(model: str | Path, input_path: str | Path, output_path: str | Path, output: str = "logit",
                     batch_size: int = 16) -> dict:
    records, prompts, chosen, rejected, skipped = read_pairs(input_path)
    scorer = load_scorer(model, output, batch_size)
    # One call for both sides: sorted-by-length batching then mixes chosen and rejected freely.
    scores = scorer.score(prompts + prompts, chosen + rejected)
    s_chosen, s_rejected = scores[: len(records)], scores[len(records) :]
    write_jsonl_atomic(output_path, ({**r, "score_chosen": float(c), "score_rejected": float(j)}
                                     for r, c, j in zip(records, s_chosen, s_rejected)))
    accuracy = PairwiseAccuracy()
    accuracy.update(s_chosen, s_rejected)
    return {"n": len(records), "skipped": skipped, "pairwise_accuracy": float(accuracy.compute()),
            "mean_margin": float((s_chosen - s_rejected).mean())}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Score chosen/rejected pairs with a saved reward model.")
    parser.add_argument("--model", required=True, help="exported RM or DPO folder (or its parent holding merged/)")
    parser.add_argument("--input", required=True, help="JSONL of pairs or HH-RLHF transcripts (.gz allowed)")
    parser.add_argument("--output", required=True, help="JSONL to write, input lines + score_chosen/score_rejected")
    parser.add_argument("--output-type", choices=OUTPUTS, default="logit", help="raw logit (default) or sigmoid prob")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    summary = score_pairs_file(args.model, args.input, args.output, args.output_type, args.batch_size)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    exit_on_error(main)()
