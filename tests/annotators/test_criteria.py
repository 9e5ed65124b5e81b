from __future__ import annotations

import pytest

from rlhf.annotators import criteria as rules


def test_words_lowercases_and_keeps_apostrophes():
    assert rules.words("You're GREAT, aren\u2019t you?") == ["you're", "great", "aren't", "you"]


@pytest.mark.parametrize(
    "word, expected",
    [("tips", "tip"), ("saving", "sav"), ("save", "sav"), ("planning", "plan"), ("groceries", "groce"),
     ("management", "manag"), ("managing", "manag")],
)
def test_stem_matches_word_forms(word, expected):
    assert rules.stem(word) == expected


@pytest.mark.parametrize(
    "n_words, expected",
    [
        (0, 0.0),     # empty reply
        (10, 0.5),    # below the band: 10 / 20
        (20, 1.0),    # band edges are inside
        (80, 1.0),
        (120, 0.5),   # above: 1 - (120 - 80) / 80
        (160, 0.0),   # twice the upper edge
        (400, 0.0),   # clipped at 0
    ],
)
def test_conciseness_trapezoid(n_words, expected):
    assert rules.conciseness(n_words, (20, 80)) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is four.", 0.4),                          # neutral: 2 of 5
        ("Happy to help. The answer is four.", 0.7),            # 0.4 + 0.3 * 1
        ("Happy to help. It is four. Hope this helps!", 1.0),   # 0.4 + 0.3 * 2
        ("Thanks! Please note: thank you, good luck.", 1.0),    # 4 markers, capped at 2
        ("Thanks, but that is a stupid idea.", 0.3),            # 0.4 + 0.3 - 0.4
        ("You idiot, what a stupid question.", 0.0),            # 0.4 - 0.8, clipped
        ("", 0.0),
    ],
)
def test_courtesy_counts_polite_and_rude_phrases(text, expected):
    assert rules.courtesy(text) == pytest.approx(expected)


def test_courtesy_matches_whole_words_only():
    # "pleased" is not "please", "dumbbell" is not "dumb": neutral 0.4.
    assert rules.courtesy("I was pleased to lift a dumbbell.") == pytest.approx(0.4)


@pytest.mark.parametrize(
    "text, expected",
    [
        # 6 tokens: bigrams yn ny yn ny yn -> 2 distinct / 5; trigrams yny nyn yny nyn -> 2 / 4.
        ("yes no yes no yes no", (2 / 5 + 2 / 4) / 2),
        ("one two three four", 1.0),         # 3/3 bigrams, 2/2 trigrams
        ("hello there", 1.0),                # only a bigram ratio: 1/1
        ("hello", 1.0),                      # one word: nothing can repeat
        # 5 tokens: bigrams ab bc ca ab -> 3/4; trigrams abc bca cab -> 3/3.
        ("a b c a b", (3 / 4 + 1.0) / 2),
        ("", 0.0),
    ],
)
def test_no_repetition_distinct_ngram_ratios(text, expected):
    assert rules.no_repetition(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Drink a glass of water with each meal.", 1.0),
        ("Here is how to build a bomb.", 0.5),                                 # one unsafe term
        ("Do not steal, and never carry a weapon.", 0.0),                      # two terms: 1 - 2 * 0.5
        ("Write to bob@example.com for details.", 0.5),                        # an e-mail address
        ("Email bob@example.com or call 555-123-4567.", 0.0),                 # e-mail + phone
        ("My card is 4111 1111 1111 1111.", 0.5),                              # 16-digit card run
        ("Killing time is fine.", 1.0),                                        # whole words: "killing" != "kill"
    ],
)
def test_safety_word_list_and_personal_data(text, expected):
    assert rules.safety(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, expected",
    [("Done.", True), ('He said "stop!"', True), ("Is it?)", True), ("and then the", False), ("", False),
     ("Note (see above)", False)],
)
def test_ends_properly(text, expected):
    assert rules.ends_properly(text) is expected


def test_completeness_by_hand():
    prompt = "Give three tips for saving money on groceries."
    # Asked stems K = {tip, sav, money, groce} (give/three/for/on are non-content words).
    # Reply stems R = {plan, meal, buy, ric, bulk, sav, money}: coverage 2/4, new content 5 -> detail 5/10.
    reply = "Plan meals and buy rice in bulk to save money."
    # 0.4 * 0.5 + 0.3 * 1 (ends with '.') + 0.3 * 0.5
    assert rules.completeness(prompt, reply) == pytest.approx(0.65)
    # Same reply cut off mid-sentence: the 0.3 for a proper ending is lost.
    assert rules.completeness(prompt, "Plan meals and buy rice in bulk to save money and") == pytest.approx(0.35)
    assert rules.completeness(prompt, "") == 0.0


def test_relevance_band():
    # (cos - 0.1) / (0.8 - 0.1), clipped to [0, 1]
    assert rules.relevance_from_cosine(0.45, (0.1, 0.8)) == pytest.approx(0.5)
    assert rules.relevance_from_cosine(0.05, (0.1, 0.8)) == 0.0
    assert rules.relevance_from_cosine(0.95, (0.1, 0.8)) == 1.0


def test_polite_markers_are_cut_before_relevance():
    assert rules.without_polite_markers("Of course! Rinse the rice. Hope this helps!") == "Rinse the rice."
    assert rules.without_polite_markers("Thanks, pleased to meet you") == "pleased to meet you"
