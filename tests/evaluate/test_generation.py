import json

import pytest
import torch

from rlhf.data.templates import get_template
from rlhf.core.errors import ConfigError, DataError
from rlhf.evaluate import generation
from rlhf.evaluate.__main__ import main
from rlhf.data.prompt_encoding import encode_prompt, left_pad
from rlhf.evaluate.generation import DecodingSettings, decode_response, generate_responses, load_model_for_generation


@pytest.fixture(scope="module")
def tiny():
    return load_model_for_generation("tiny")


def test_left_pad_by_hand():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_encode_prompt_ends_with_assistant_prefix_and_keeps_the_tail(tiny):
    _, tokenizer = tiny
    template = get_template("chatml")
    prompt = [{"role": "user", "content": "Hello there"}]
    ids = encode_prompt(tokenizer, template, prompt, 1024, "truncate")
    assert tokenizer.decode(ids) == "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n"
    assert encode_prompt(tokenizer, template, prompt, 4, "truncate") == ids[-4:]


def test_decode_response_stops_at_eos(tiny):
    _, tokenizer = tiny
    ids = tokenizer("Fine, thanks.", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id, 42, 43]
    assert decode_response(tokenizer, ids, ("<|im_end|>",)) == "Fine, thanks."


def test_left_padded_batch_matches_single_prompts(tiny):
    model, tokenizer = tiny
    template = get_template("chatml")
    prompts = [[{"role": "user", "content": "A much longer question about the weather today?"}],
               [{"role": "user", "content": "Hi"}]]
    encoded = [encode_prompt(tokenizer, template, p, 1024, "truncate") for p in prompts]

    def first_step_scores(batch):
        ids, mask = left_pad(batch, tokenizer.pad_token_id)
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=1, do_sample=False,
                             output_scores=True, return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id)
        return out.scores[0]

    together = first_step_scores(encoded)
    for row, ids in enumerate(encoded):
        torch.testing.assert_close(together[row], first_step_scores([ids])[0], atol=1e-4, rtol=1e-4)


def test_generate_responses_rows_and_followups(tiny):
    model, tokenizer = tiny
    records = [{"id": 1, "dataset": "mt_bench", "prompt": [{"role": "user", "content": "Write a poem."}],
                "category": "writing", "followups": ["Now shorter."]},
               {"id": "g1", "dataset": "gsm8k", "prompt": [{"role": "user", "content": "2+2?"}], "reference": "4"}]
    decoding = DecodingSettings(max_new_tokens=3, do_sample=True, seed=7)
    rows = generate_responses(model, tokenizer, records, decoding, "tiny-test", batch_size=2)
    assert [r["id"] for r in rows] == ["1", "g1"]
    assert set(rows[0]) == {"id", "dataset", "prompt", "response", "model", "decoding", "category",
                            "followup_responses"}
    assert rows[1]["reference"] == "4" and "followup_responses" not in rows[1]
    assert rows[0]["decoding"] == {"max_new_tokens": 3, "do_sample": True, "temperature": 1.0, "top_p": 1.0,
                                   "seed": 7, "template": "chatml", "max_prompt_tokens": 1024}
    assert all(isinstance(r["response"], str) and r["response"] for r in rows)
    again = generate_responses(model, tokenizer, records, decoding, "tiny-test", batch_size=2)
    assert [r["response"] for r in again] == [r["response"] for r in rows]  # seeded sampling repeats
    with pytest.raises(ConfigError, match="max_new_tokens"):
        generate_responses(model, tokenizer, records, DecodingSettings(max_new_tokens=0), "x")


def test_cli_generate_on_tiny_writes_jsonl(tmp_path, tiny, monkeypatch):
    loaded = []
    monkeypatch.setattr(generation, "load_model_for_generation",
                        lambda *args: loaded.append(args) or tiny)  # reuse the module's tiny model
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "p1", "prompt": "Say hi"}\n"Bare string prompt"\n')
    out = tmp_path / "gen" / "tiny.jsonl"
    main(["generate", "--model", "tiny", "--name", "tiny-cli", "--prompts-file", str(prompts), "--dataset", "mine",
          "--max-new-tokens", "3", "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["dataset"], r["model"]) for r in rows] == [("p1", "mine", "tiny-cli"),
                                                                    ("mine_1", "mine", "tiny-cli")]
    assert rows[1]["prompt"] == [{"role": "user", "content": "Bare string prompt"}]
    assert rows[0]["decoding"]["max_new_tokens"] == 3 and rows[0]["decoding"]["do_sample"] is False
    assert [p.name for p in out.parent.iterdir()] == ["tiny.jsonl"]  # no temp file left behind
    assert loaded == [("tiny", None, "float32", "cpu")]


def test_generate_file_answers_a_stream_chunk_by_chunk_as_one_call_would(tmp_path, tiny, monkeypatch):
    # 5 one-turn prompts, sampled, in chunks of 1 batch of 2: the rows equal one call over all records
    # (the seed is set once per file), and the records are read only as they are answered.
    monkeypatch.setattr(generation, "load_model_for_generation", lambda *args: tiny)
    monkeypatch.setattr(generation, "GENERATED_PER_CHUNK", 1)
    records = [{"id": str(i), "dataset": "d", "prompt": [{"role": "user", "content": f"Count to {i}."}]}
               for i in range(5)]
    read = []

    def stream():
        for record in records:
            read.append(record["id"])
            yield record

    decoding = DecodingSettings(max_new_tokens=4, do_sample=True, seed=3)
    out = generation.generate_file(tmp_path / "g.jsonl", stream(), "tiny", decoding, "m", batch_size=2)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    model, tokenizer = tiny
    once = generate_responses(model, tokenizer, records, decoding, "m", batch_size=2)
    assert [r["response"] for r in rows] == [r["response"] for r in once]
    assert read == [str(i) for i in range(5)]


def test_a_bad_prompt_line_stops_generate_before_the_model_loads(tmp_path, monkeypatch):
    def no_model(*args):
        raise AssertionError("every prompt is checked before the model loads")

    monkeypatch.setattr(generation, "load_model_for_generation", no_model)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "p1", "prompt": "Say hi"}\n{"id": "p2"}\n')
    with pytest.raises(DataError, match=r"prompts.jsonl, record 2: missing prompt field 'prompt'"):
        main(["generate", "--model", "tiny", "--prompts-file", str(prompts), "--out", str(tmp_path / "g.jsonl")])
    assert not (tmp_path / "g.jsonl").exists()
