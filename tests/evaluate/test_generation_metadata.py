"""Metadata travels from a prompts file through `generate` into the generations file, where
`accuracy` grades it: the whole verifiable-evaluation path on the tiny model."""

from __future__ import annotations

import json

from rlhf.evaluate.__main__ import main


def test_generate_keeps_metadata_and_accuracy_reads_it(tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "a", "question": "What is 2 + 2?", "gold": 4, "level": 1},
        {"id": "b", "question": "What is 6 * 7?", "gold": 42, "level": 2}]))
    out = tmp_path / "gen.jsonl"
    main(["generate", "--model", "tiny", "--prompts-file", str(prompts), "--prompt-field", "question",
          "--metadata-field", "answer=gold", "--metadata-field", "level", "--max-new-tokens", "3", "--out", str(out)])
    capsys.readouterr()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["metadata"] for r in rows] == [{"id": "a", "answer": 4, "level": 1}, {"id": "b", "answer": 42, "level": 2}]
    main(["accuracy", "--generations", str(out), "--reward", "numeric_match"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["all"]["n_prompts"] == 2 and set(summary["subsets"]["level"]) == {"1", "2"}
