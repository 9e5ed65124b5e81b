"""bench/stream_rss.py without measuring: its arguments, the inputs it makes (the short file is the
long one's first lines, so the two runs differ only in length) and the ratio it reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scripts import load_bench_script  # noqa: E402



@pytest.fixture(scope="module")
def bench():
    return load_bench_script("stream_rss.py")


def test_defaults_measure_every_command_on_1000_and_100000_lines(bench):
    args = bench.parse([])
    assert args.sizes == [1000, 100_000] and args.commands == list(bench.COMMANDS) and args.runs == 1
    quick = bench.parse(["--quick", "--commands", "stats"])
    assert quick.sizes == [100, 2000] and quick.commands == ["stats"] and quick.quick


@pytest.mark.parametrize("argv", [["--commands", "score,train"], ["--sizes", "1000"], ["--runs", "0"]])
def test_bad_arguments_stop_before_anything_runs(bench, argv):
    with pytest.raises(SystemExit):
        bench.parse(argv)


def test_every_command_line_parses_and_names_its_inputs(bench, tmp_path):
    from rlhf.evaluate.__main__ import build_parser

    files = {"rm": "RM", **bench.make_inputs(tmp_path / "in", 3)}
    lines = bench.commands(files, tmp_path / "out")
    assert tuple(lines) == bench.COMMANDS
    for name, (module, argv) in lines.items():
        if module == "rlhf.evaluate.__main__":
            assert build_parser().parse_args(argv).command == name
        else:
            assert module == "rlhf.score" and argv[argv.index("--input") + 1] == files["pairs"]


def test_the_short_input_is_the_start_of_the_long_one(bench, tmp_path):
    short, long = bench.make_inputs(tmp_path / "short", 5), bench.make_inputs(tmp_path / "long", 12)
    for key in short:
        head = Path(long[key]).read_text().splitlines()[:5]
        assert Path(short[key]).read_text().splitlines() == head
    generations = [json.loads(line) for line in Path(long["gen_a"]).read_text().splitlines()]
    # line i: 'a shop sells (i % 97 + 3) apples a day for (i % 13 + 2) days'; sft is right when i % 3 > 0
    assert generations[4]["reference"] == str(7 * 6) and generations[4]["response"].endswith("#### 42")
    assert generations[3]["response"].endswith("#### 31")


def test_ratio_is_the_longest_input_over_the_shortest(bench):
    per_size = {"10": [{"peak_rss_mb": 100.0, "wall_s": 1.0}],
                "1000": [{"peak_rss_mb": 112.0, "wall_s": 3.0}, {"peak_rss_mb": 108.0, "wall_s": 2.0},
                         {"peak_rss_mb": 109.0, "wall_s": 9.0}]}
    out = bench.summarise(per_size, [10, 1000])
    assert out["1000"]["peak_rss_mb"] == 109.0 and out["1000"]["wall_s"] == 3.0   # medians of 3
    assert out["rss_ratio"] == 1.09 and out["within_target"]
