from __future__ import annotations

import json

import pytest

from rlhf.annotators.human import (
    HumanAnnotator,
    export_labelling_file,
    import_rankings,
    read_labelling_file,
)
from rlhf.core.errors import DataError

P1 = [{"role": "user", "content": "Name a fruit."}]
P2 = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
ITEMS = [
    {"prompt_id": "p1", "prompt": P1, "responses": ["Apple.", "A car.", "Banana, a yellow fruit."]},
    {"prompt_id": "p2", "prompt": P2, "responses": ["Blue.", "Seven."]},
]


def exported(tmp_path):
    return export_labelling_file(tmp_path / "label.jsonl", ITEMS)


def fill(path, ranks_by_line: list, edit=None):
    """Write ranks into an exported file the way a labeller would; `edit(record)` tampers further."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record, ranks in zip(records, ranks_by_line):
        record["ranks"] = ranks
        if edit is not None:
            edit(record)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_export_writes_one_line_per_prompt_with_response_ids(tmp_path):
    path = exported(tmp_path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {
        "prompt_id": "p1",
        "prompt": P1,
        "responses": [{"response_id": "r0", "text": "Apple."}, {"response_id": "r1", "text": "A car."},
                      {"response_id": "r2", "text": "Banana, a yellow fruit."}],
        "ranks": None,
    }
    assert [r["response_id"] for r in lines[1]["responses"]] == ["r0", "r1"]
    assert not (tmp_path / "label.jsonl.tmp").exists()


def test_round_trip_list_and_object_ranks(tmp_path):
    # Labeller: p1 best r2, then r0, worst r1 (1-based 2, 3, 1); p2 written as an object.
    path = fill(exported(tmp_path), [[2, 3, 1], {"r1": 2, "r0": 1}])
    assert import_rankings(path, expected={"p1": 3, "p2": 2}) == {"p1": [1, 2, 0], "p2": [0, 1]}


def test_zero_based_files_with_rank_base_0(tmp_path):
    path = fill(exported(tmp_path), [[1, 2, 0], [0, 1]])
    assert import_rankings(path, rank_base=0) == {"p1": [1, 2, 0], "p2": [0, 1]}


def test_shuffled_response_order_keeps_ids(tmp_path):
    # The labelling tool reordered p1's responses (r2, r0, r1); a list of ranks follows that order.
    def shuffle(record):
        if record["prompt_id"] == "p1":
            record["responses"] = [record["responses"][i] for i in (2, 0, 1)]

    path = fill(exported(tmp_path), [[1, 2, 3], [1, 2]], edit=shuffle)
    # r2 -> 1, r0 -> 2, r1 -> 3: 0-based by original position [1, 2, 0]
    assert import_rankings(path)["p1"] == [1, 2, 0]


def test_duplicate_rank_names_file_and_line(tmp_path):
    path = fill(exported(tmp_path), [[1, 2, 3], [1, 1]])
    with pytest.raises(DataError, match=r"label\.jsonl, record 2: .*'p2'.*rank\(s\) \[1\] given to more than one"):
        import_rankings(path)


def test_ties_allowed_when_asked(tmp_path):
    path = fill(exported(tmp_path), [[1, 1, 3], [1, 2]])
    assert import_rankings(path, allow_ties=True)["p1"] == [0, 0, 2]


def test_out_of_range_rank(tmp_path):
    path = fill(exported(tmp_path), [[1, 2, 4], [1, 2]])
    with pytest.raises(DataError, match=r"record 1: .*rank 4 of r2 is outside 1\.\.3"):
        import_rankings(path)
    path = fill(exported(tmp_path), [[0, 1, 2], [1, 2]])
    with pytest.raises(DataError, match=r"record 1: .*rank 0 of r0 is outside 1\.\.3 \(0-based files need rank_base=0\)"):
        import_rankings(path)


def test_non_integer_rank(tmp_path):
    path = fill(exported(tmp_path), [[1, 2, "3"], [1, 2]])
    with pytest.raises(DataError, match=r"record 1: .*rank of r2 must be an integer, got '3'"):
        import_rankings(path)


def test_missing_rank_for_a_response_id(tmp_path):
    path = fill(exported(tmp_path), [{"r0": 1, "r2": 2}, [1, 2]])
    with pytest.raises(DataError, match=r"record 1: .*no rank for response ids \['r1'\]"):
        import_rankings(path)
    path = fill(exported(tmp_path), [[1, 2], [1, 2]])
    with pytest.raises(DataError, match=r"record 1: .*'ranks' has 2 entries for 3 responses"):
        import_rankings(path)


def test_unknown_response_id(tmp_path):
    path = fill(exported(tmp_path), [{"r0": 1, "r1": 2, "r2": 3, "r9": 4}, [1, 2]])
    with pytest.raises(DataError, match=r"record 1: .*unknown response ids \['r9'\]"):
        import_rankings(path)


def test_missing_and_unknown_prompt_ids(tmp_path):
    path = exported(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text(lines[0].replace('"ranks": null', '"ranks": [1, 2, 3]') + "\n")
    with pytest.raises(DataError, match=r"label\.jsonl: prompt_id\(s\) \['p2'\] were exported but are missing"):
        import_rankings(path, expected={"p1": 3, "p2": 2})
    with pytest.raises(DataError, match=r"record 1: unknown prompt_id 'p1'"):
        import_rankings(path, expected={"p2": 2})


def test_missing_prompt_id_field(tmp_path):
    path = fill(exported(tmp_path), [[1, 2, 3], [1, 2]], edit=lambda r: r.pop("prompt_id"))
    with pytest.raises(DataError, match=r"record 1: missing 'prompt_id'"):
        import_rankings(path)


def test_unranked_line_and_bad_json(tmp_path):
    path = fill(exported(tmp_path), [[1, 2, 3], None])
    with pytest.raises(DataError, match=r"record 2: prompt_id 'p2' is not ranked"):
        import_rankings(path)
    assert import_rankings(path, on_unranked="skip") == {"p1": [0, 1, 2]}
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(DataError, match=r"record 3: invalid JSON at column 2"):
        read_labelling_file(path, on_unranked="skip")


def test_duplicate_prompt_id_in_file_and_in_export(tmp_path):
    path = fill(exported(tmp_path), [[1, 2, 3], [1, 2]], edit=lambda r: r.update(prompt_id="p1"))
    with pytest.raises(DataError, match=r"record 2: prompt_id 'p1' already appeared on line 1"):
        import_rankings(path)
    with pytest.raises(DataError, match="appears twice"):
        export_labelling_file(tmp_path / "x.jsonl", [ITEMS[0], ITEMS[0]])


def test_export_rejects_a_prompt_not_ending_with_user(tmp_path):
    bad = {"prompt_id": "p3", "prompt": [{"role": "assistant", "content": "hi"}], "responses": ["a"]}
    with pytest.raises(DataError, match=r"x\.jsonl: export item 0: .*end with a user turn"):
        export_labelling_file(tmp_path / "x.jsonl", [bad])


def test_human_annotator_replays_ranks_for_any_order_or_subset(tmp_path):
    path = fill(exported(tmp_path), [[2, 3, 1], [1, 2]])
    human = HumanAnnotator.from_file(path)
    assert human.rank(P1, ["Apple.", "A car.", "Banana, a yellow fruit."]) == [1, 2, 0]
    # Subset in another order: Banana (file rank 1) above A car (file rank 3).
    assert human.rank(P1, ["A car.", "Banana, a yellow fruit."]) == [1, 0]
    assert human.rank(P2, ["Seven.", "Blue."]) == [1, 0]
    with pytest.raises(DataError, match="responses not in the labelling file"):
        human.rank(P1, ["Cherry."])
    with pytest.raises(DataError, match="no human ranking"):
        human.rank([{"role": "user", "content": "Unseen?"}], ["x"])
    with pytest.raises(NotImplementedError):
        human.labels(P1, "Apple.")
