import pytest

from rlhf.evaluate.gsm8k import extract_final_number, gold_answer, gsm8k_accuracy, is_correct, normalize_number


@pytest.mark.parametrize("text, expected", [
    ("She pays $1,234 in total.", "1234"),                       # thousands comma, currency sign
    ("So the bag weighs 5kg.", "5"),                             # unit glued to the number
    ("It owes -$5 now.", "-5"),                                  # negative money
    ("The temperature drops to -3 degrees", "-3"),               # negative number
    ("10-3=7 apples", "7"),                                      # subtraction is not a minus sign
    ("Each costs 2.50 dollars", "2.5"),                          # decimal, trailing zero dropped
    ("He has 3 apples and 4 pears, so 7 fruits.", "7"),         # several numbers: the last one
    ("The answer is 42. Check: 6*7=42, plus 1 spare", "42"),     # 'answer is' beats the last number
    ("Work: 48/2 = 24 <<48/2=24>>\n#### 72\nThat took 3 steps", "72"),  # '####' marker wins
    ("#### 1,000,000", "1000000"),
    ("Total: 18.00", "18"),
    ("no number here", None),
])
def test_extract_final_number(text, expected):
    assert extract_final_number(text) == expected


def test_gold_answer_and_comparison_by_value():
    assert gold_answer("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72") == "72"
    assert gold_answer("no marker") is None
    assert normalize_number("1,234.50") == "1234.5"
    assert is_correct("so she earns $18.00", "18")
    assert not is_correct("so she earns 17", "18")


def test_gsm8k_accuracy_counts():
    rows = [{"response": "The answer is 5", "reference": "5"},
            {"response": "It is 1,200 meters", "reference": "1200"},
            {"response": "I think 7", "reference": "8"},
            {"response": "no idea", "reference": "3"}]
    # correct: rows 1, 2 -> 2/4; unparsed: row 4
    assert gsm8k_accuracy(rows) == {"n": 4, "correct": 2, "unparsed": 1, "accuracy": 0.5}


def test_real_gsm8k_gold_answers_parse(shared_data_dir):
    from rlhf.evaluate.prompt_sets import load_gsm8k

    records = load_gsm8k(shared_data_dir / "eval" / "gsm8k_test.jsonl.gz")
    assert len(records) == 1319
    # first test question (Janet's ducks): 16 - 3 - 4 = 9 eggs * $2 = $18
    assert records[0]["reference"] == "18"
