"""Templates and response-only labels (docs/methods.md §2.1, §2.2, §3.2).

Token counts below were read off the SmolLM2 tokenizer once and written out by hand, segment by
segment; the expected label vectors are built from those counts, not from the code under test.
"""

from __future__ import annotations

import pytest

from rlhf.data.templates import (
    ICE_GRT_PREAMBLE,
    get_template,
    tokenize_conversation,
    tokenize_prompt_response,
    truncate_prompt_response,
)
from rlhf.core.errors import ConfigError, DataError
from rlhf.core.models import load_tokenizer

X = -100  # ignored label

# Verbatim from docs/methods.md §2.1 (ICE-GRT §3.1), with <INPUT> = "Hi" and <OUTPUT> = "Hello there".
ICE_GRT_DOC_TEXT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request. ### USER: Hi ASSISTANT: Hello there"
)
# Verbatim from docs/methods.md §2.1 (thesis Fig. 15); the template closes the block with one newline.
CHATML_DOC_TEXT = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello there<|im_end|>"

MULTI_TURN = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello there"},
    {"role": "user", "content": "Bye"},
    {"role": "assistant", "content": "Goodbye"},
]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("embedded:smollm2-135m")


def _text(tok, ids):
    return tok.decode(ids, skip_special_tokens=False)


def test_ice_grt_text_is_the_methods_string(tok):
    template = get_template("ice_grt", tok.eos_token)
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]
    rendered = "".join(s.text for s in template.segments(messages))
    assert rendered == ICE_GRT_DOC_TEXT + "<|im_end|>"  # EOS closes the response (docs/methods.md §2.2)
    assert ICE_GRT_PREAMBLE + " ### USER: Hi ASSISTANT: Hello there" == ICE_GRT_DOC_TEXT
    # At generation time the prompt ends with "ASSISTANT:" [inferred].
    assert template.render_prompt(messages[:1]) == ICE_GRT_DOC_TEXT[: -len(" Hello there")]


def test_chatml_text_is_the_methods_string(tok):
    template = get_template("chatml")
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]
    assert "".join(s.text for s in template.segments(messages)) == CHATML_DOC_TEXT + "\n"
    assert template.render_prompt(messages[:1]) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_chatml_multi_turn_masks_every_assistant_turn(tok):
    # Segment token counts (SmolLM2):
    #   "<|im_start|>system\nBe brief.<|im_end|>\n"  8  -> positions 0..7   masked
    #   "<|im_start|>user\nHi<|im_end|>\n"           6  -> 8..13           masked
    #   "<|im_start|>assistant\n"                    4  -> 14..17          masked
    #   "Hello there<|im_end|>"                      3  -> 18..20          LOSS
    #   "\n"                                         1  -> 21              masked
    #   "<|im_start|>user\nBye<|im_end|>\n"          7  -> 22..28          masked
    #   "<|im_start|>assistant\n"                    4  -> 29..32          masked
    #   "Goodbye<|im_end|>"                          3  -> 33..35          LOSS
    #   "\n"                                         1  -> 36              masked      total 37
    out = tokenize_conversation(tok, MULTI_TURN, get_template("chatml"))
    assert len(out["input_ids"]) == 37
    trained = [i for i, label in enumerate(out["labels"]) if label != X]
    assert trained == [18, 19, 20, 33, 34, 35]
    assert [out["labels"][i] for i in trained] == [out["input_ids"][i] for i in trained]
    assert _text(tok, [out["input_ids"][i] for i in trained[:3]]) == "Hello there<|im_end|>"
    assert _text(tok, [out["input_ids"][i] for i in trained[3:]]) == "Goodbye<|im_end|>"
    # The segment-wise ids are the ids of the joined text: no boundary artefacts.
    joined = "".join(s.text for s in get_template("chatml").segments(MULTI_TURN))
    assert out["input_ids"] == tok(joined, add_special_tokens=False)["input_ids"]


def test_ice_grt_multi_turn_masks_every_assistant_turn(tok):
    # A system message replaces the preamble (templates.py docstring):
    #   "Be brief. ###"             4 -> 0..3    masked
    #   " USER: Hi"                 4 -> 4..7    masked
    #   " ASSISTANT:"               4 -> 8..11   masked
    #   " Hello there<|im_end|>"    3 -> 12..14  LOSS
    #   " USER: Bye"                5 -> 15..19  masked
    #   " ASSISTANT:"               4 -> 20..23  masked
    #   " Goodbye<|im_end|>"        3 -> 24..26  LOSS        total 27
    out = tokenize_conversation(tok, MULTI_TURN, get_template("ice_grt", tok.eos_token))
    assert len(out["input_ids"]) == 27
    assert [i for i, label in enumerate(out["labels"]) if label != X] == [12, 13, 14, 24, 25, 26]
    assert _text(tok, out["input_ids"]) == (
        "Be brief. ### USER: Hi ASSISTANT: Hello there<|im_end|> USER: Bye ASSISTANT: Goodbye<|im_end|>"
    )


def test_ice_grt_single_turn_positions(tok):
    # Preamble + " ###" is 19 tokens (0..18), " USER: Hi" 4 (19..22), " ASSISTANT:" 4 (23..26),
    # " Hello there<|im_end|>" 3 (27..29).
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]
    out = tokenize_conversation(tok, messages, get_template("ice_grt", tok.eos_token))
    assert out["labels"] == [X] * 27 + out["input_ids"][27:30]
    assert len(out["input_ids"]) == 30


def test_conversation_truncation_cuts_from_the_right(tok):
    # 37 tokens (see the ChatML test); max_length 20 keeps 0..19, i.e. only 18, 19 of the first reply.
    out = tokenize_conversation(tok, MULTI_TURN, get_template("chatml"), max_length=20)
    assert len(out["input_ids"]) == len(out["labels"]) == 20
    assert [i for i, label in enumerate(out["labels"]) if label != X] == [18, 19]


@pytest.mark.parametrize(
    ("prompt_len", "response_len", "max_length", "min_prompt", "expected_prompt", "expected_response"),
    [
        # fits: nothing cut
        (3, 3, 8, 2, [1, 2, 3], [101, 102, 103]),
        # long prompt: response (5) kept whole, prompt keeps its last 8 - 5 = 3 tokens
        (10, 5, 8, 3, [8, 9, 10], [101, 102, 103, 104, 105]),
        # long response: it gets 8 - 3 = 5 (tail dropped), the prompt keeps its last 3
        (10, 10, 8, 3, [8, 9, 10], [101, 102, 103, 104, 105]),
        # short prompt (2 < 3): response gets 8 - 2 = 6 tokens, prompt stays whole
        (2, 10, 8, 3, [1, 2], [101, 102, 103, 104, 105, 106]),
    ],
)
def test_truncate_prompt_response_thesis_rule(prompt_len, response_len, max_length, min_prompt,
                                              expected_prompt, expected_response):
    prompt = list(range(1, prompt_len + 1))
    response = list(range(101, 101 + response_len))
    assert truncate_prompt_response(prompt, response, max_length, min_prompt) == (expected_prompt, expected_response)


def test_truncate_rejects_min_prompt_at_or_above_budget():
    with pytest.raises(ConfigError, match="min_prompt_tokens"):
        truncate_prompt_response([1], [2], max_length=4, min_prompt_tokens=4)


def test_prompt_response_keeps_response_and_min_prompt_tokens(tok):
    # Prompt ids: "<|im_start|>user\nHi<|im_end|>\n" (6) + "<|im_start|>assistant\n" (4)
    #   = [1, 4093, 198, 26843, 2, 198, 1, 520, 9531, 198]; response "Hello there<|im_end|>" = [19556, 665, 2].
    # max_length 8, min_prompt 5: response budget 8 - 5 = 3 (whole), prompt keeps its last 5 tokens.
    out = tokenize_prompt_response(tok, [{"role": "user", "content": "Hi"}], "Hello there", get_template("chatml"),
                                   max_length=8, min_prompt_tokens=5)
    assert out["input_ids"] == [198, 1, 520, 9531, 198, 19556, 665, 2]
    assert out["labels"] == [X] * 5 + [19556, 665, 2]
    assert out["prompt_length"] == 5


def test_prompt_response_long_inputs_respect_both_bounds(tok):
    prompt = [{"role": "user", "content": "word " * 300}]
    response = "answer " * 100
    out = tokenize_prompt_response(tok, prompt, response, get_template("chatml"), max_length=256, min_prompt_tokens=64)
    n_response = sum(label != X for label in out["labels"])
    # " answer" is one token each: "answer" + 99 x " answer" + " " + "<|im_end|>" <= 256 - 64 = 192 -> kept whole.
    assert len(out["input_ids"]) == 256
    assert out["prompt_length"] >= 64 and out["prompt_length"] + n_response == 256
    assert _text(tok, out["input_ids"][-n_response:]) == response + "<|im_end|>"
    # The prompt is cut at its beginning: it still ends with the generation prefix.
    assert _text(tok, out["input_ids"][: out["prompt_length"]]).endswith("<|im_start|>assistant\n")


def test_unknown_template_and_misplaced_role():
    with pytest.raises(ConfigError, match="data.template"):
        get_template("vicuna")
    with pytest.raises(DataError, match="role 'system'"):
        get_template("ice_grt").segments([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}])
