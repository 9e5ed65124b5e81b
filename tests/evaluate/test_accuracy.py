"""`python -m rlhf.evaluate accuracy`: accuracy with a 95 % CI over prompts, per-subset tables,
mean@k and pass@k, on a hand-worked generations file."""

from __future__ import annotations

import json
import math

import pytest

from rlhf.core.errors import ConfigError, DataError
from rlhf.evaluate.__main__ import main
from rlhf.evaluate.accuracy import clustered_accuracy, reward_node
from rlhf.evaluate.stats import standard_error

Q = [{"role": "user", "content": "?"}]
# prompt -> (metadata, two sampled responses); correct: p0 1 of 2, p1 2 of 2, p2 0 of 2 (one unparseable)
SAMPLES = {
    "p0": ({"answer": 4, "level": 1}, ["so #### 4", "#### 5"]),
    "p1": ({"answer": 6, "level": 1}, ["#### 6", "The answer is 6."]),
    "p2": ({"answer": 10, "level": 2}, ["no idea", "#### 11"]),
}


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def generations(tmp_path):
    """The layout `generate` writes: one response per row, k rows per id."""
    rows = [{"id": pid, "dataset": "arith", "prompt": Q, "response": r, "model": "m", "metadata": {"id": pid, **meta}}
            for pid, (meta, responses) in SAMPLES.items() for r in responses]
    return write(tmp_path / "gen.jsonl", rows)


def run(capsys, *args):
    main(["accuracy", *args])
    return capsys.readouterr().out


def test_hand_worked_accuracy_ci_and_pass_at_k(tmp_path, capsys):
    out = json.loads(run(capsys, "--generations", str(generations(tmp_path)), "--reward", "math_answer",
                         "--k", "1", "--k", "2"))
    overall = out["all"]
    # per-prompt accuracy 0.5, 1, 0 -> 0.5; SE = sqrt((0² + 0.5² + 0.5²) / (3 · 3)) = sqrt(0.5 / 9)
    se = math.sqrt(0.5 / 9)
    assert overall["accuracy"] == 0.5 and overall["se"] == pytest.approx(se)
    assert overall["ci95"] == pytest.approx([0.5 - 1.96 * se, 0.5 + 1.96 * se])
    assert (overall["n_prompts"], overall["n_samples"], overall["unparsed"]) == (3, 6, 1)
    # pass@2: p0 (n=2, c=1) -> 1, p1 -> 1, p2 -> 0 = 2/3; pass@1 = mean c/n = 0.5
    assert overall["pass@2"] == pytest.approx(2 / 3) and overall["pass@1"] == pytest.approx(0.5)
    # mean@1 reads each prompt's first sample: 1, 1, 0
    assert overall["mean@1"] == pytest.approx(2 / 3) and overall["mean@2"] == pytest.approx(0.5)
    # the per-level table (level varies, so it is found without --by)
    level = out["subsets"]["level"]
    assert set(level) == {"1", "2"}
    assert level["1"]["accuracy"] == 0.75 and level["1"]["se"] == pytest.approx(math.sqrt(0.125 / 4))
    assert level["2"]["accuracy"] == 0.0 and level["2"]["pass@2"] == 0.0


def test_a_samples_file_gives_the_same_numbers_and_markdown_tables(tmp_path, capsys):
    rows = [{"id": pid, "prompt": Q, "responses": responses, "metadata": meta}
            for pid, (meta, responses) in SAMPLES.items()]
    path = write(tmp_path / "samples.jsonl", rows)
    out = json.loads(run(capsys, "--generations", str(path), "--reward", "math_answer", "--k", "2"))
    assert out["all"]["accuracy"] == 0.5 and out["all"]["pass@2"] == pytest.approx(2 / 3)
    table = run(capsys, "--generations", str(path), "--reward", "math_answer", "--k", "2", "--format", "markdown")
    assert "| all | 3 | 6 | 0.500 | [0.038, 0.962] | 0.667 |" in table
    assert "| level | prompts | samples | accuracy | 95% CI | pass@2 |" in table
    scored = tmp_path / "scored.jsonl"
    run(capsys, "--generations", str(path), "--reward", "numeric_match", "--scored", str(scored))
    first = json.loads(scored.read_text().splitlines()[0])
    assert first["correct"] is True and first["details"]["numeric_match"]["pred"] == "4"


def test_one_sample_per_prompt_is_the_binomial_standard_error():
    flags = [[True], [True], [True], [False]]
    out = clustered_accuracy(flags)
    assert out["accuracy"] == 0.75 and out["se"] == pytest.approx(standard_error(0.75, 4))
    assert clustered_accuracy(flags, ddof=1)["se"] == pytest.approx(standard_error(0.75, 4, ddof=1))


def test_gsm8k_generations_are_graded_by_their_reference(tmp_path, capsys):
    rows = [{"id": "g1", "dataset": "gsm8k", "prompt": Q, "response": "She makes $18 every day.", "reference": "18"},
            {"id": "g2", "dataset": "gsm8k", "prompt": Q, "response": "#### 20", "reference": "18"}]
    out = json.loads(run(capsys, "--generations", str(write(tmp_path / "g.jsonl", rows)), "--reward", "math_answer"))
    assert out["all"]["accuracy"] == 0.5 and out["subsets"] == {}


def test_bad_requests_are_named(tmp_path, capsys):
    path = generations(tmp_path)
    with pytest.raises(DataError, match=r"asked for k=\[3\], but some prompt has only 2"):
        run(capsys, "--generations", str(path), "--reward", "math_answer", "--k", "3")
    with pytest.raises(ConfigError, match="neither a yaml file nor a reward config name"):
        run(capsys, "--generations", str(path), "--reward", "vibes")
    with pytest.raises(ConfigError, match="--part"):
        run(capsys, "--generations", str(path), "--reward", "math_answer", "--part", "format")
    bad = write(tmp_path / "bad.jsonl", [{"id": "x", "prompt": Q}])
    with pytest.raises(DataError, match="bad.jsonl, record 1"):
        run(capsys, "--generations", str(bad), "--reward", "math_answer")


def test_reward_names_and_typed_kinds_load():
    assert reward_node("math_answer")["fn"]["_target_"] == "rlhf.rewards.verifiable.MathAnswerReward"
    assert reward_node("word_count") == {"kind": "word_count"}


def test_scored_rows_are_published_only_with_a_summary(tmp_path, capsys):
    # k=3 asks for more samples than a prompt has: the scored file, written as rows are graded, is
    # not published; with k=2 it is, one row per sample in file order.
    path = generations(tmp_path)
    scored = tmp_path / "scored.jsonl"
    with pytest.raises(DataError, match=r"asked for k=\[3\], but some prompt has only 2 \(e.g. p0\)"):
        run(capsys, "--generations", str(path), "--reward", "math_answer", "--k", "3", "--scored", str(scored))
    assert not scored.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["gen.jsonl"]
    run(capsys, "--generations", str(path), "--reward", "math_answer", "--k", "2", "--scored", str(scored))
    rows = [json.loads(line) for line in scored.read_text().splitlines()]
    assert [(r["id"], r["correct"]) for r in rows] == [("p0", True), ("p0", False), ("p1", True), ("p1", True),
                                                       ("p2", False), ("p2", False)]


def test_columns_give_the_summary_of_the_rows():
    from rlhf.evaluate.accuracy import ScoredColumns, accuracy_summary

    # p1 has 3 samples (first 2 wrong), p2 has 2; level 1 / 2 / missing
    rows = [{"id": "p1", "correct": c, "score": float(c), "parsed": True, "metadata": {"level": 1}}
            for c in (False, False, True)]
    rows += [{"id": "p2", "correct": True, "score": 1.0, "parsed": None, "metadata": {"level": 2}},
             {"id": "p2", "correct": False, "score": 0.5, "parsed": False, "metadata": {}}]
    columns = ScoredColumns()
    for row in rows:
        columns.add(row)
    out = accuracy_summary(columns, ks=(1, 2))
    assert out == accuracy_summary(rows, ks=(1, 2))
    overall = out["all"]
    # m = 1/3, 1/2 -> 5/12; mean@1: first samples wrong, right -> 1/2; mean@2: 0, 1/2 -> 1/4
    assert overall["accuracy"] == pytest.approx(5 / 12) and overall["mean@1"] == 0.5 and overall["mean@2"] == 0.25
    # pass@2: p1 n=3 c=1 -> 1 - C(2,2)/C(3,2) = 2/3; p2 n=2 c=1 -> 1
    assert overall["pass@2"] == pytest.approx((2 / 3 + 1) / 2)
    assert overall["unparsed"] == 1 and overall["mean_reward"] == pytest.approx(2.5 / 5)
    # level: "1", "2" and "None" (the row without one); pass@2 only where each prompt has 2 samples
    assert list(out["subsets"]["level"]) == ["1", "2", "None"]
    assert out["subsets"]["level"]["1"]["pass@2"] == pytest.approx(2 / 3)
    assert "pass@2" not in out["subsets"]["level"]["2"]
