"""Print RELIABILITY.md's ledger: every case of the bad-input suite (test_entry_points.py) run once,
with the exit status and the one line each entry point printed, then the totals.

    OMP_NUM_THREADS=1 .venv/bin/python tests/reliability/ledger.py --write RELIABILITY.md   # about 3 minutes
    OMP_NUM_THREADS=1 .venv/bin/python tests/reliability/ledger.py --only score             # print one entry point
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("WANDB_MODE", "offline")

from cases import all_cases, run_case  # noqa: E402
from corpus import FAULTS, MODEL_FAULTS  # noqa: E402
from entry_points import Resources  # noqa: E402


START, END = "<!-- ledger:start -->", "<!-- ledger:end -->"


def shown(text: str, root: Path) -> str:
    """The message as a reader should see it: the temp folder shortened, pipes escaped, long lists cut."""
    text = re.sub(re.escape(str(root)) + r"/case\d+", "…", text).replace(str(root), "…")
    text = text.replace("|", "\\|")
    text = re.sub(r"\[('[^']*', ){6,}[^\]]*\]", "[…]", text)
    return text if len(text) <= 260 else text[:257] + "…"


def describe(case) -> str:
    if case.kind == "file":
        return f"{case.input}: {FAULTS[case.input].description}"
    if case.kind == "model":
        what = MODEL_FAULTS[case.input][0] if case.input in MODEL_FAULTS else "a causal LM, not a reward model"
        return f"{case.input}: {what}"
    return case.input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="entry points whose name contains this")
    parser.add_argument("--write", help="replace the ledger between the markers of this file instead of printing it")
    args = parser.parse_args()
    cases = [c for c in all_cases() if not args.only or args.only in c.entry]
    rows, totals = [], {"tried": 0, "clear errors": 0, "accepted": 0, "crashes": 0, "other": 0}
    with tempfile.TemporaryDirectory() as root:
        resources = Resources(Path(root) / "resources")
        for i, case in enumerate(cases):
            work = Path(root) / f"case{i}"
            start = time.perf_counter()
            result = run_case(case, work, resources)
            seconds = time.perf_counter() - start
            outcome = result.outcome
            lines = outcome.error_lines
            message = lines[-1].removeprefix("error: ") if lines else (
                "accepted: complete output" if outcome.code == 0 else outcome.stderr.strip().splitlines()[-1:])
            totals["tried"] += 1
            if outcome.code == "crash" or "Traceback" in outcome.stderr:
                totals["crashes"] += 1
            elif outcome.code == 2 and len(lines) == 1:
                totals["clear errors"] += 1
            elif outcome.code == 0 and case.expect == "accept":
                totals["accepted"] += 1
            else:
                totals["other"] += 1
            rows.append(f"| {case.entry} | {describe(case)} | {shown(str(message), Path(root))} | {outcome.code} |")
            print(f"{seconds:6.1f}s {case.id}: {outcome.code}", file=sys.stderr)
    table = "\n".join(["| entry point | input | message | exit |", "|---|---|---|---|", *rows, "",
                       f"**Inputs tried: {totals['tried']}; clear errors (exit 2, one line): {totals['clear errors']}; "
                       f"valid inputs accepted (exit 0, complete output): {totals['accepted']}; crashes: "
                       f"{totals['crashes']}; other outcomes: {totals['other']}.**"])
    if not args.write:
        print(table)
        return
    path = Path(args.write)
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path}: no {START} ... {END} markers to write between")
    head, rest = text.split(START, 1)
    path.write_text(f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}")

if __name__ == "__main__":
    main()
