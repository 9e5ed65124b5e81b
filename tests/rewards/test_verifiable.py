"""Verifiable rewards on real GSM8K reference answers and real-looking model outputs."""

import json
import logging

import pytest

from rlhf.core.errors import ConfigError, DataError
from rlhf.rewards.verifiable import (ExactMatchReward, MathAnswerReward, NumericMatchReward, anchored_number, gsm8k_reference,
                                     last_number)

# Real GSM8K reference answers, copied from shared/data (openai/grade-school-math@3101c7d5).
# sft/gsm8k_train.jsonl.gz line 346 (Adam earns $40 daily ...):
ADAM = ("The amount of money deducted from Adam's daily pay is $40 / 10 = $<<40/10=4>>4.\n"
        "So after deducting 10%, Adam\u2019s daily pay is $40 \u2013 $4 = $<<40-4=36>>36.\n"
        "This means that in 30 days he earns $36 * 30 = $<<36*30=1080>>1080.\n#### 1,080")
# eval/gsm8k_test.jsonl.gz line 1 (Janet's ducks):
JANET = ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
         "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer\u2019s market.\n#### 18")
# eval/gsm8k_test.jsonl.gz line 820 (Twenty students ... charity):
STUDENTS = ("Amount raised by all students was 175,000-50,000 = <<175000-50000=125000>>125,000 dollars.\n"
            "Amount raised by each student was 125,000/20 = <<125000/20=6250>>6,250 dollars.\n#### 6,250")
# eval/gsm8k_test.jsonl.gz line 1114 (the temperature in the morning):
TEMPERATURE = ("Start = +<<2=2>>2 degrees\nDrop 8 degrees = 2 - 8 = -6 degrees\n"
               "Increase 3 degrees = -6 + 3 = -3 degrees\nIt was -3 degrees Celsius in the morning.\n#### -3")

PROMPT = [{"role": "user", "content": "How much money will Adam have earned after taxes after 30 days?"}]


def run(reward, responses, refs, field="answer"):
    return reward([PROMPT] * len(responses), responses, [{field: r} for r in refs])


def test_gsm8k_reference_takes_the_number_after_the_marker():
    assert gsm8k_reference(ADAM) == "1080"
    assert gsm8k_reference(JANET) == "18"
    assert gsm8k_reference(STUDENTS) == "6250"
    assert gsm8k_reference(TEMPERATURE) == "-3"
    assert gsm8k_reference("no marker here, 42") is None
    assert gsm8k_reference("#### ") is None


GSM8K_CASES = [
    ("The answer is $1,080.", True),
    ("1080 dollars", True),
    ("He earns $36 a day, so 1080.", True),
    ("After 30 days Adam has $1,080 after taxes.", True),
    ("He earns 40 * 30 = 1200 dollars.", False),     # wrong answer (forgot the tax)
    ("I don't know", False),                         # no answer at all
]


@pytest.mark.parametrize("response, correct", GSM8K_CASES)
def test_math_answer_reward_on_gsm8k(response, correct):
    for ref in (ADAM, "1,080", "1080", 1080):       # full answer, bare strings, an int
        scores, details = run(MathAnswerReward(), [response], [ref])
        assert scores == [1.0 if correct else 0.0], (response, ref, details)
        assert details["hit"] == [correct]
        assert details["ref_parsed"] == [True]


@pytest.mark.parametrize("response, correct", GSM8K_CASES)
def test_numeric_match_reward_on_gsm8k(response, correct):
    scores, details = run(NumericMatchReward(), [response], [ADAM])
    assert scores == [1.0 if correct else 0.0], details


def test_unparseable_answers_score_zero_and_are_counted():
    responses = ["I don't know", "The answer is $1,080.", "", "\\frac{", "1080 dollars"]
    for reward in (MathAnswerReward(), NumericMatchReward()):
        scores, details = run(reward, responses, [ADAM] * len(responses))
        assert scores == [0.0, 1.0, 0.0, 0.0, 1.0], type(reward).__name__
        assert details["parsed"] == [False, True, False, False, True]
        assert details["parsed"].count(False) == 3
        assert details["pred"][0] is None and details["pred"][1] == "1080"


def test_math_answer_reward_on_latex():
    responses = ["0.75", "3/4", "So the probability is $\\boxed{\\frac{3}{4}}$.", "\\boxed{\\frac{2}{3}}",
                 "no idea"]
    scores, details = run(MathAnswerReward(), responses, ["\\frac{3}{4}"] * len(responses))
    assert scores == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert details["parsed"] == [True, True, True, True, False]
    # the other direction: a decimal reference, a boxed fraction answer (MATH style)
    scores, _ = run(MathAnswerReward(), ["The answer is \\boxed{\\frac{1}{2}}", "\\boxed{\\frac{1}{3}}"], ["0.5"] * 2)
    assert scores == [1.0, 0.0]
    # a bare LaTeX reference is read as math ($2\sqrt{3}$, not the number 2)
    scores, _ = run(MathAnswerReward(), ["$\\boxed{2\\sqrt{3}}$", "2"], ["2\\sqrt{3}"] * 2)
    assert scores == [1.0, 0.0]


def test_numeric_match_tolerance_and_rule():
    assert last_number("Step 1: 3 apples, 4 pears; so 7.") == "7"
    assert last_number("It costs $1,234.50 in total") == "1234.5"
    assert last_number("none") is None
    # the last number, unless anchored: then 'answer is' / '####' wins (the GSM8K accuracy rule)
    text = "The answer is 42. Check: 6*7=42, plus 1 spare"
    assert run(NumericMatchReward(), [text], ["42"])[0] == [0.0]
    assert run(NumericMatchReward(anchored=True), [text], ["42"])[0] == [1.0]
    # tolerance
    assert run(NumericMatchReward(), ["about 3.14"], [3.14159])[0] == [0.0]
    assert run(NumericMatchReward(abs_tol=0.01), ["about 3.14"], [3.14159])[0] == [1.0]
    assert run(NumericMatchReward(rel_tol=0.01), ["1075 dollars"], ["1,080"])[0] == [1.0]
    assert run(NumericMatchReward(), ["18.00"], [JANET])[0] == [1.0]
    assert run(NumericMatchReward(), ["It was -3 degrees."], [TEMPERATURE])[0] == [1.0]
    with pytest.raises(ConfigError, match="rel_tol"):
        NumericMatchReward(rel_tol=-1)


def test_exact_match_reward():
    reward = ExactMatchReward("label")
    scores, details = run(reward, ["  Paris. ", "paris", "Lyon", "PARIS!"], ["Paris"] * 4, field="label")
    assert scores == [1.0, 1.0, 0.0, 0.0]
    assert details["parsed"] == [True] * 4
    strict = ExactMatchReward("label", normalize="none")
    assert run(strict, ["Paris", "paris"], ["Paris"] * 2, field="label")[0] == [1.0, 0.0]
    custom = ExactMatchReward("label", normalize=lambda s: s.replace(",", "").strip())
    assert run(custom, ["1,080"], ["1080"], field="label")[0] == [1.0]
    tagged = ExactMatchReward("label", extract=r"<answer>(.*?)</answer>")
    scores, details = run(tagged, ["<think>hmm</think><answer> Paris </answer>", "Paris"], ["Paris"] * 2,
                          field="label")
    assert scores == [1.0, 0.0]
    assert details["parsed"] == [True, False]
    with pytest.raises(ConfigError, match="normalize"):
        ExactMatchReward("label", normalize="fuzzy")


@pytest.mark.parametrize("reward", [MathAnswerReward(), NumericMatchReward(), ExactMatchReward()])
def test_missing_field_names_the_field(reward):
    with pytest.raises(DataError, match="'answer'") as excinfo:
        reward([PROMPT, PROMPT], ["18", "18"], [{"answer": "18"}, {"reference": "18"}])
    assert "record 1" in str(excinfo.value) and "reference" in str(excinfo.value)
    with pytest.raises(ValueError, match="metadata rows"):
        reward([PROMPT], ["18"], [])


def test_custom_field_and_unreadable_reference(caplog):
    scores, _ = run(MathAnswerReward(field="gold"), ["so 18"], [JANET], field="gold")
    assert scores == [1.0]
    with caplog.at_level(logging.WARNING):
        scores, details = run(MathAnswerReward(), ["18"], ["#### (none)"])
    assert scores == [0.0] and details["ref_parsed"] == [False]
    assert "cannot read the reference" in caplog.text


def test_details_are_per_response_lists():
    responses = ["The answer is $1,080.", "I don't know"]
    scores, details = run(MathAnswerReward(), responses, [ADAM, ADAM])
    assert set(details) == {"parsed", "hit", "pred", "ref_parsed"}
    assert all(len(v) == len(responses) for v in details.values())
    json.dumps(details)  # loggable as is


def test_math_answer_reward_agrees_with_real_gsm8k_grading(shared_data_dir):
    """OpenAI's released GSM8K model solutions carry a human-checked `is_correct`: the reward
    must agree with it on the first 100 problems (both 6B and 175B fine-tuned solutions)."""
    import gzip

    path = shared_data_dir / "eval" / "gsm8k_example_model_solutions.jsonl.gz"
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for _, line in zip(range(100), f)]
    responses, refs, labels = [], [], []
    for row in rows:
        gold = row["ground_truth"].rsplit("A:", 1)[1].strip()
        for model in ("6b_finetuning", "175b_finetuning"):
            responses.append(row[model]["solution"])
            refs.append(gold)
            labels.append(row[model]["is_correct"])
    scores, _ = run(MathAnswerReward(), responses, refs)
    assert [s == 1.0 for s in scores] == labels
    scores, _ = run(NumericMatchReward(), responses, refs)
    agree = sum((s == 1.0) == lab for s, lab in zip(scores, labels)) / len(labels)
    assert agree >= 0.98, agree


PARITY_TEXTS = [
    "She pays $1,234 in total.", "So the bag weighs 5kg.", "It owes -$5 now.", "The temperature drops to -3 degrees",
    "10-3=7 apples", "Each costs 2.50 dollars", "He has 3 apples and 4 pears, so 7 fruits.",
    "The answer is 42. Check: 6*7=42, plus 1 spare", "Work: 48/2 = 24 <<48/2=24>>\n#### 72\nThat took 3 steps",
    "#### 1,000,000", "Total: 18.00", "no number here", "\u22124 degrees", ADAM, JANET, STUDENTS, TEMPERATURE,
]


def test_the_gsm8k_evaluation_grades_with_the_rewards_number_grammar():
    """One grammar: a reward and the GSM8K accuracy it should move read the same numbers."""
    from rlhf.evaluate import gsm8k

    for text in PARITY_TEXTS:
        assert gsm8k.extract_final_number(text) == anchored_number(text), text
        assert gsm8k.gold_answer(text) == gsm8k_reference(text), text
    assert gsm8k.extract_final_number("It costs $1,080.00 in total") == "1080"


def test_gsm8k_reference_matches_the_loader_on_real_data(shared_data_dir):
    import gzip

    from rlhf.evaluate.gsm8k import gold_answer

    for name in ("eval/gsm8k_test.jsonl.gz", "sft/gsm8k_train.jsonl.gz"):
        with gzip.open(shared_data_dir / name, "rt") as f:
            answers = [json.loads(line)["answer"] for line in f]
        assert all(gsm8k_reference(a) == gold_answer(a) and gsm8k_reference(a) is not None for a in answers), name


def test_math_answer_reward_runs_outside_the_main_thread():
    """math_verify's timeout is signal based (main thread only): in a worker thread it is off."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        scores, details = pool.submit(run, MathAnswerReward(), ["The answer is $1,080.", "I don't know"],
                                      [ADAM, ADAM]).result()
    assert scores == [1.0, 0.0] and details["parsed"] == [True, False]
