"""Score a file of preference pairs with a saved reward model, or with a DPO export's implicit reward.

    python -m rlhf.score --model runs/reward/.../model --input pairs.jsonl --output scored.jsonl

A DPO export (rlhf_metadata.json stage "dpo") scores each response by β·(log π − log π_ref), its
policy against the base it recorded (rlhf.dpo.implicit_reward; docs/algorithms.md §3.1).

Input lines are {"prompt": str | messages, "chosen": str, "rejected": str} or HH-RLHF transcripts
{"chosen": "\\n\\nHuman: ...", "rejected": ...}. Output lines are the input plus score_chosen and
score_rejected; the command prints {"n", "skipped", "skipped_by_reason", "pairwise_accuracy",
"mean_margin"} as JSON, with a tie counted as wrong (docs/methods.md §3.8 [default]). A transcript
pair whose two sides do not share the dialogue before the last Assistant turn compares different
contexts: it is skipped and counted, the rule training applies.

The file is read twice, line by line: a first pass checks every line (a bad one stops the run before
the model loads), the second scores SCORED_PER_CALL pairs at a time and writes them as it goes, to a
staged file published at the end (rlhf.data.jsonl.write_jsonl_atomic). Memory holds one chunk and
running sums, whatever the length of the file (bench/stream_rss.py).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import torch

from rlhf.data.jsonl import chunks, iter_jsonl, write_jsonl_atomic
from rlhf.data.sources import SkipRecord, hh_rlhf, pairs
from rlhf.core.errors import ConfigError, DataError, exit_on_error
from rlhf.dpo.implicit_reward import is_dpo_export, load_implicit_reward
from rlhf.reward_model.metrics import PairwiseAccuracy
from rlhf.reward_model.scoring import OUTPUTS, load_reward_model


SCORED_PER_CALL = 512
"""Pairs per scorer call: the scorer length-sorts a call's responses into batches (less padding the
larger the call), and a call's pairs are all that is held at once."""


def iter_pairs(path: str | Path, skipped: Counter | None = None) -> Iterator[tuple[dict, list[dict], str, str]]:
    """(raw record, prompt messages, chosen, rejected) per scorable line, read line by line; the
    format is picked per line by its `prompt` key. A pair the training adapter skips is counted in
    `skipped` under its reason."""
    for number, record in iter_jsonl(path):
        adapter = pairs if isinstance(record, dict) and "prompt" in record else hh_rlhf
        try:
            (group,) = adapter(record, (str(path), number))
        except SkipRecord as skip:
            if skipped is not None:
                skipped[skip.reason] += 1
            continue
        yield record, group["prompt"], group["responses"][0], group["responses"][1]


def check_pairs(path: str | Path) -> tuple[int, Counter]:
    """(pairs to score, pairs skipped by reason) of the whole file, read once without keeping it."""
    skipped: Counter = Counter()
    n = sum(1 for _ in iter_pairs(path, skipped))
    if not n:
        reasons = "; ".join(f"{reason}: {count}" for reason, count in sorted(skipped.items()))
        what = f"all {sum(skipped.values())} pairs were skipped ({reasons})" if skipped else "empty file"
        raise DataError(f"no pairs to score ({what})", source=str(path))
    return n, skipped


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
    """Score every pair of `input_path` into `output_path` (module docstring: two passes, one chunk
    in memory) and return the summary the command prints."""
    n, skipped = check_pairs(input_path)
    scorer = load_scorer(model, output, batch_size)
    accuracy = PairwiseAccuracy()
    scored, margin_sum = 0, 0.0

    def scored_lines() -> Iterator[dict]:
        nonlocal scored, margin_sum
        for chunk in chunks(iter_pairs(input_path), SCORED_PER_CALL):
            records, prompts, chosen, rejected = zip(*chunk)
            # One call for both sides: sorted-by-length batching then mixes chosen and rejected freely.
            scores = scorer.score(list(prompts) * 2, list(chosen) + list(rejected))
            s_chosen, s_rejected = scores[: len(chunk)], scores[len(chunk) :]
            accuracy.update(s_chosen, s_rejected)
            margin_sum += float((s_chosen.double() - s_rejected.double()).sum())
            scored += len(chunk)
            for record, c, r in zip(records, s_chosen.tolist(), s_rejected.tolist()):
                yield {**record, "score_chosen": c, "score_rejected": r}
        if scored != n:
            raise DataError(f"the file changed while it was scored ({n} pairs on the first read, {scored} on the "
                            "second)", source=str(input_path))

    write_jsonl_atomic(output_path, scored_lines())
    return {"n": n, "skipped": sum(skipped.values()), "skipped_by_reason": dict(skipped),
            "pairwise_accuracy": float(accuracy.compute()), "mean_margin": margin_sum / n}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Score chosen/rejected pairs with a saved reward model.")
    parser.add_argument("--model", required=True, help="exported RM or DPO folder (or its parent holding merged/)")
    parser.add_argument("--input", required=True, help="JSONL of pairs or HH-RLHF transcripts (.gz allowed)")
    parser.add_argument("--output", required=True, help="JSONL to write, input lines + score_chosen/score_rejected")
    parser.add_argument("--output-type", choices=OUTPUTS, default="logit", help="raw logit (default) or sigmoid prob")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        raise ConfigError("--batch-size", f"must be an integer >= 1, got {args.batch_size}")
    summary = score_pairs_file(args.model, args.input, args.output, args.output_type, args.batch_size)
    print(json.dumps(summary))
    return summary



def cli() -> None:
    """`python -m rlhf.score` and the `rlhf-score` script: bad input exits 2
    with one line (main itself raises, for callers)."""
    exit_on_error(main)()


if __name__ == "__main__":
    cli()
