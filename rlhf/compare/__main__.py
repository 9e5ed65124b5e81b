"""python -m rlhf.compare <sweep dir>: the comparison report from the arms that have finished (rlhf.compare.report)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlhf.compare.report import write_compare_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlhf.compare", description=__doc__)
    parser.add_argument("sweep_dir", type=Path, help="the sweep dir of experiment=compare, e.g. runs/compare/demo")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a directory", file=sys.stderr)
        return 2
    paths = write_compare_report(args.sweep_dir)
    if paths is None:
        print(f"error: no finished arm in {args.sweep_dir} (none has frontier/frontier.json yet)", file=sys.stderr)
        return 2
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
