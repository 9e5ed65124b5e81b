import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf.core.errors import DataError
from rlhf.reward_model.module import RewardModule
from rlhf.reward_model.scoring import load_reward_model
from rlhf.score import main, score

REPO = Path(__file__).resolve().parents[1]
TINY = {"source": "tiny", "tokenizer": "embedded:smollm2-135m", "dtype": "float32",
        "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128, "seed": 0}}
HH = {"chosen": "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour, water, yeast and salt, then bake.",
      "rejected": "\n\nHuman: How do I bake bread?\n\nAssistant: No."}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    module = RewardModule(model=TINY, max_length=64, min_prompt_tokens=8)
    module.configure_model()
    return module.export(tmp_path_factory.mktemp("rm") / "model")


def write_lines(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_cli_accuracy_on_mirrored_pairs_and_a_tie(model_dir, tmp_path, capsys):
    # Line 2 is line 1 mirrored, so exactly one of them is right (scores of different texts differ);
    # line 3 is a tie (same text), which counts as wrong. Accuracy = 1 / 3.
    lines = [{"prompt": "Pick one.", "chosen": "The first answer.", "rejected": "A second, different answer."},
             {"prompt": "Pick one.", "chosen": "A second, different answer.", "rejected": "The first answer."},
             {"prompt": [{"role": "user", "content": "Same?"}], "chosen": "Yes.", "rejected": "Yes."}]
    write_lines(tmp_path / "pairs.jsonl", lines)
    summary = main(["--model", model_dir, "--input", str(tmp_path / "pairs.jsonl"),
                    "--output", str(tmp_path / "out.jsonl")])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == summary
    assert summary["n"] == 3 and summary["pairwise_accuracy"] == pytest.approx(1 / 3)
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert out[0]["prompt"] == "Pick one." and "score_chosen" in out[0] and "score_rejected" in out[0]
    assert out[0]["score_chosen"] == pytest.approx(out[1]["score_rejected"], abs=1e-5)
    assert out[2]["score_chosen"] == pytest.approx(out[2]["score_rejected"], abs=1e-5)
    # mean margin: line 1 margin d, line 2 margin -d, tie 0 -> 0
    assert summary["mean_margin"] == pytest.approx(0.0, abs=1e-5)


def test_cli_on_hh_transcripts_prints_fraction_from_output(model_dir, tmp_path, capsys):
    lines = [HH, {"chosen": HH["rejected"], "rejected": HH["chosen"]},
             {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "Hello there, friend."}]
    write_lines(tmp_path / "hh.jsonl", lines)
    main(["--model", model_dir, "--input", str(tmp_path / "hh.jsonl"), "--output", str(tmp_path / "scored.jsonl"),
          "--output-type", "prob"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    out = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    right = sum(r["score_chosen"] > r["score_rejected"] for r in out)
    assert summary["n"] == 3 and summary["pairwise_accuracy"] == pytest.approx(right / 3)
    assert 1 <= right <= 2  # lines 1 and 2 mirror each other: exactly one of them is right
    assert all(0 < r["score_chosen"] < 1 for r in out)  # probabilities
    # the HH line is scored as (dialogue before the last Assistant turn, last Assistant turn)
    direct = load_reward_model(model_dir, output="prob").score(
        [[{"role": "user", "content": "How do I bake bread?"}]], ["Mix flour, water, yeast and salt, then bake."])
    assert out[0]["score_chosen"] == pytest.approx(float(direct[0]), abs=1e-5)


@pytest.mark.slow
def test_cli_as_a_subprocess(model_dir, tmp_path):
    write_lines(tmp_path / "hh.jsonl", [HH])
    cmd = [sys.executable, "-m", "rlhf.score", "--model", model_dir, "--input", str(tmp_path / "hh.jsonl"),
           "--output", str(tmp_path / "scored.jsonl")]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    out = json.loads((tmp_path / "scored.jsonl").read_text())
    assert summary["pairwise_accuracy"] == float(out["score_chosen"] > out["score_rejected"])


def test_score_function_and_bad_input(model_dir, tmp_path):
    values = score(["Hi", "Hi"], ["Hello.", "Hello."], model=model_dir)
    assert values.shape == (2,) and float(values[0]) == pytest.approx(float(values[1]), abs=1e-6)
    write_lines(tmp_path / "bad.jsonl", [{"prompt": "x", "chosen": "a"}])
    with pytest.raises(DataError, match=r"bad.jsonl, record 1: missing field 'rejected'"):
        main(["--model", model_dir, "--input", str(tmp_path / "bad.jsonl"), "--output", str(tmp_path / "o.jsonl")])


def test_hh_pair_with_different_contexts_is_skipped_and_counted_as_in_training(model_dir, tmp_path, capsys):
    # Line 2's rejected side has an extra Human/Assistant exchange: the two sides do not share the
    # dialogue before the last Assistant turn, so training drops the pair and scoring must too.
    diverged = {"chosen": HH["chosen"],
                "rejected": "\n\nHuman: How do I bake bread?\n\nAssistant: Why?\n\nHuman: Just tell me.\n\nAssistant: No."}
    write_lines(tmp_path / "hh.jsonl", [HH, diverged, {"chosen": HH["rejected"], "rejected": HH["chosen"]}])
    summary = main(["--model", model_dir, "--input", str(tmp_path / "hh.jsonl"), "--output", str(tmp_path / "s.jsonl")])
    assert summary["n"] == 2 and summary["skipped"] == 1
    assert summary["skipped_by_reason"] == {"chosen and rejected do not share the dialogue before the last Assistant turn": 1}
    out = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["rejected"] for r in out] == [HH["rejected"], HH["chosen"]]   # the diverged line is not written
    assert summary["pairwise_accuracy"] == pytest.approx(0.5)              # mirrored pair: exactly one right


def test_a_file_longer_than_one_chunk_scores_as_one_call(model_dir, tmp_path, monkeypatch):
    # 5 pairs, 2 per scorer call: 3 calls, each written as it comes; scores equal one direct call.
    import rlhf.score

    monkeypatch.setattr(rlhf.score, "SCORED_PER_CALL", 2)
    lines = [{"prompt": f"Question {i}?", "chosen": "Yes." * (i + 1), "rejected": f"No, {i}."} for i in range(5)]
    write_lines(tmp_path / "pairs.jsonl", lines)
    summary = main(["--model", model_dir, "--input", str(tmp_path / "pairs.jsonl"), "--output", str(tmp_path / "o.jsonl")])
    out = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    direct = load_reward_model(model_dir).score([line["prompt"] for line in lines] * 2,
                                                [line["chosen"] for line in lines] + [line["rejected"] for line in lines])
    assert [r["prompt"] for r in out] == [line["prompt"] for line in lines]
    assert [r["score_chosen"] for r in out] == pytest.approx(direct[:5].tolist(), abs=1e-5)
    assert [r["score_rejected"] for r in out] == pytest.approx(direct[5:].tolist(), abs=1e-5)
    margins = [r["score_chosen"] - r["score_rejected"] for r in out]
    assert summary["n"] == 5 and summary["mean_margin"] == pytest.approx(sum(margins) / 5, abs=1e-5)
    assert summary["pairwise_accuracy"] == pytest.approx(sum(m > 0 for m in margins) / 5)


def test_a_bad_last_line_stops_before_the_model_loads_and_leaves_the_old_output(model_dir, tmp_path, monkeypatch):
    import rlhf.score

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not load before every line is checked")

    monkeypatch.setattr(rlhf.score, "load_scorer", no_model)
    write_lines(tmp_path / "pairs.jsonl", [{"prompt": "x", "chosen": "a", "rejected": "b"}] * 3 + [{"prompt": "x"}])
    (tmp_path / "o.jsonl").write_text("previous\n")
    with pytest.raises(DataError, match=r"pairs.jsonl, record 4: missing field 'chosen'"):
        main(["--model", model_dir, "--input", str(tmp_path / "pairs.jsonl"), "--output", str(tmp_path / "o.jsonl")])
    assert (tmp_path / "o.jsonl").read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl", "pairs.jsonl"]   # no staged file left


def test_a_file_whose_every_pair_is_skipped_names_the_reason(model_dir, tmp_path):
    diverged = {"chosen": HH["chosen"], "rejected": "\n\nHuman: Other?\n\nAssistant: No."}
    write_lines(tmp_path / "hh.jsonl", [diverged])
    with pytest.raises(DataError, match="all 1 pairs were skipped \\(chosen and rejected do not share the dialogue"):
        main(["--model", model_dir, "--input", str(tmp_path / "hh.jsonl"), "--output", str(tmp_path / "o.jsonl")])
    assert not (tmp_path / "o.jsonl").exists()
