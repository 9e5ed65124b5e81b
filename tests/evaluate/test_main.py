import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf.core.errors import DataError
from rlhf.evaluate.__main__ import main

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from openai_stub import OpenAIStubServer  # noqa: E402


def write_lines(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def plain_judgments(tmp_path: Path) -> Path:
    # koala: 6 wins, 2 ties, 2 losses for x; vicuna: 3 wins, 1 loss
    winners = {"koala": ["a"] * 6 + ["tie"] * 2 + ["b"] * 2, "vicuna": ["a", "a", "a", "b"]}
    rows = [{"id": f"{d}{i}", "dataset": d, "model_a": "x", "model_b": "y", "winner": w}
            for d, ws in winners.items() for i, w in enumerate(ws)]
    return write_lines(tmp_path / "judgments.jsonl", rows)


def test_stats_prints_hand_worked_values(tmp_path, capsys):
    main(["stats", "--judgments", str(plain_judgments(tmp_path))])
    (pair,) = json.loads(capsys.readouterr().out)["pairs"]
    koala = pair["per_dataset"]["koala"]
    # koala: p = 7/10 = 0.7, se = sqrt(.21/10) = 0.144914, CI 0.7 ± 0.284031
    assert (koala["n"], koala["wins"], koala["losses"], koala["ties"]) == (10, 6, 2, 2)
    assert koala["win_rate"] == pytest.approx(0.7)
    assert koala["se"] == pytest.approx(0.144914, abs=1e-6)
    assert (koala["ci_low"], koala["ci_high"]) == pytest.approx((0.415969, 0.984031), abs=1e-6)
    # vicuna: p = 3/4 = 0.75, se = sqrt(.1875/4) = 0.216506
    assert pair["per_dataset"]["vicuna"]["se"] == pytest.approx(0.216506, abs=1e-6)
    # overall: 9 wins, 2 ties, 3 losses -> p = 10/14 = 0.714286
    assert pair["overall"]["win_rate"] == pytest.approx(10 / 14)
    assert "bootstrap_ci_low" not in pair["overall"]


def test_stats_ties_excluded_and_bootstrap(tmp_path, capsys):
    main(["stats", "--judgments", str(plain_judgments(tmp_path)), "--ties", "exclude", "--bootstrap", "200"])
    (pair,) = json.loads(capsys.readouterr().out)["pairs"]
    # overall without ties: 9 / 12 = 0.75
    assert pair["overall"]["n"] == 12 and pair["overall"]["win_rate"] == pytest.approx(0.75)
    assert pair["overall"]["bootstrap_ci_low"] <= 0.75 <= pair["overall"]["bootstrap_ci_high"]


@pytest.mark.parametrize("bad_line, message", [
    ('{"id": "2", "dataset": "d", "model_a": "x", "model_b": "y", "winner": "draw"}', "winner must be one of"),
    ('{"id": "2", "dataset": "d", "model_a": "x", "winner": "a"}', "lacks \\['model_b'\\]"),
    ('{"id": "2", "dataset": ', "not valid JSON|invalid JSON"),
])
def test_stats_bad_line_names_file_and_line(tmp_path, bad_line, message):
    good = '{"id": "1", "dataset": "d", "model_a": "x", "model_b": "y", "winner": "a"}'
    path = write_lines(tmp_path / "bad.jsonl", [good, bad_line])
    with pytest.raises(DataError, match=message) as error:
        main(["stats", "--judgments", str(path)])
    assert error.value.source == str(path) and error.value.record == 2


def test_cli_exits_with_one_clear_line(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", ['{"id": "1"}'])
    done = subprocess.run([sys.executable, "-m", "rlhf.evaluate", "stats", "--judgments", str(path)],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2
    assert f"{path}, record 1" in done.stderr and "Traceback" not in done.stderr


def test_judge_with_llm_stub_then_report(tmp_path, capsys):
    def generations(model, responses):
        return [{"id": str(i), "dataset": "vicuna", "prompt": [{"role": "user", "content": f"q{i}"}],
                 "response": r, "model": model} for i, r in enumerate(responses)]

    a = write_lines(tmp_path / "a.jsonl", generations("sft", ["GOOD answer", "meh"]))
    b = write_lines(tmp_path / "b.jsonl", generations("ppo", ["meh", "GOOD answer"]))

    def judge(body):
        shown_first = body["messages"][-1]["content"].split("--- Answer A ---\n", 1)[1]
        return "[[A]]" if shown_first.startswith("GOOD") else "[[B]]"

    with OpenAIStubServer(judge) as server:
        main(["judge", "--a", str(a), "--b", str(b), "--judge", "llm", "--base-url", server.base_url,
              "--judge-model", "stub-model", "--out", str(tmp_path / "j.jsonl")])
        assert len(server.requests) == 4  # 2 prompts x 2 orders
    rows = [json.loads(line) for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert [r["winner"] for r in rows] == ["a", "b"]
    assert rows[0]["judge"] == "llm:stub-model:rlhf-pairwise-v1"
    main(["report", "--judgments", str(tmp_path / "j.jsonl"), "--out", str(tmp_path / "report")])
    assert "llm:stub-model" in (tmp_path / "report" / "report.md").read_text()
    assert (tmp_path / "report" / "figures" / "win_rates.png").stat().st_size > 0


def test_agreement_and_gsm8k_commands(tmp_path, capsys):
    base = {"dataset": "d", "model_a": "x", "model_b": "y"}
    rm = write_lines(tmp_path / "rm.jsonl", [{**base, "id": "1", "winner": "a"}, {**base, "id": "2", "winner": "b"},
                                             {**base, "id": "3", "winner": "a"}])
    llm = write_lines(tmp_path / "llm.jsonl", [{**base, "id": "1", "winner": "a"}, {**base, "id": "2", "winner": "a"},
                                               {**base, "id": "3", "winner": "tie"}])
    main(["agreement", "--predicted", str(rm), "--reference", str(llm)])
    # reference tie on id 3 is left out; id 1 agrees, id 2 does not -> 1/2
    assert json.loads(capsys.readouterr().out)["overall"] == {"n": 2, "agree": 1, "rate": 0.5}
    question = [{"role": "user", "content": "q"}]
    gens = write_lines(tmp_path / "gsm.jsonl", [
        {"id": "1", "dataset": "gsm8k", "prompt": question, "response": "So 1,000.", "reference": "1000"},
        {"id": "2", "dataset": "gsm8k", "prompt": question, "response": "#### 7", "reference": "8"},
        {"id": "3", "dataset": "vicuna", "prompt": question, "response": "Hello"},  # not GSM8K: ignored
    ])
    main(["gsm8k", "--generations", str(gens)])
    assert json.loads(capsys.readouterr().out) == {"n": 2, "correct": 1, "unparsed": 0, "accuracy": 0.5}
