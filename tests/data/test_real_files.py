"""Every record of every real file in ../shared/data goes through the adapter that reads it, the way
training does (load_source on a data config's own source, then the data module's setup): each record
is parsed or skipped under a counted reason, and the counts are the ones docs/data.md states.

Where a count can be worked out without the adapter it is (lines of the raw file, the README's and
MANIFEST's figures, the raw text of the records a rule drops), so a broken adapter cannot agree with
itself. Skips with a clear reason when ../shared/data is absent. The whole module takes about 15 s
(tokenising every SFT conversation at the default max_length is most of it).
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rlhf.annotators.llm_judge import load_fastchat_judge_prompt
from rlhf.core.errors import ConfigError
from rlhf.data.preference_datamodule import EMPTY as EMPTY_PAIR
from rlhf.data.sft_datamodule import EMPTY as EMPTY_RESPONSE
from rlhf.data.source_spec import load_source
from rlhf.data.sources import HH_DIFFERENT_CONTEXTS, SourceTally, load_records
from rlhf.evaluate.prompt_sets import PROMPT_SETS, load_prompt_set

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "configs"
DOCS = REPO / "docs" / "data.md"
PLACEHOLDER = "/SHARED_DATA"

# (file, adapter) -> (parsed, examples, {reason: records skipped}); docs/data.md, table 1.
ADAPTER_COUNTS = {
    ("sft/alpaca_data_5000.jsonl.gz", "alpaca"): (5000, 5000, {}),
    ("sft/gsm8k_train.jsonl.gz", "gsm8k"): (7473, 7473, {}),
    ("sft/gsm8k_train.jsonl.gz", "generic"): (7473, 7473, {}),
    ("sft/oasst_en_100_tree.jsonl.gz", "oasst_threads"): (100, 100, {}),
    ("sft/oasst_en_100_tree.jsonl.gz", "oasst_ranked"): (100, 212, {}),
    ("sft/oasst_en_100_tree.jsonl.gz", "oasst_prompts"): (100, 142, {}),
    ("preference/oasst_en_100_message.jsonl.gz", "oasst_ranked"): (100, 212, {}),
    ("preference/oasst_en_100_message.jsonl.gz", "oasst_threads"): (100, 100, {}),
    ("preference/oasst_en_100_message.jsonl.gz", "oasst_prompts"): (100, 142, {}),
    ("preference/hh_rlhf_harmless_base_test_dev.jsonl.gz", "hh_rlhf"): (1797, 1797, {HH_DIFFERENT_CONTEXTS: 3}),
    ("eval/gsm8k_test.jsonl.gz", "generic"): (1319, 1319, {}),
}
# Adapters no data config names for a file, run here so that every (file, adapter) a user may pick is counted.
EXTRA_SOURCES = [
    {"path": "sft/oasst_en_100_tree.jsonl.gz", "adapter": "oasst_ranked"},
    {"path": "sft/oasst_en_100_tree.jsonl.gz", "adapter": "oasst_prompts"},
    {"path": "preference/oasst_en_100_message.jsonl.gz", "adapter": "oasst_threads"},
    {"path": "preference/oasst_en_100_message.jsonl.gz", "adapter": "oasst_prompts"},
    {"path": "eval/gsm8k_test.jsonl.gz", "adapter": "generic", "kind": "prompt", "fields": {"prompt": "question"},
     "metadata_fields": {"answer": "answer"}},   # experiment=rlvr_gsm8k's evaluate.prompts
]
# data config -> examples its data module drops at the config's defaults, {reason: n}; docs/data.md, table 2.
MODULE_SKIPS = {
    "alpaca": {EMPTY_RESPONSE: 2},
    "gsm8k": {},
    "gsm8k_prompts": {},
    "hh_rlhf_pairs": {EMPTY_PAIR: 3},
    "oasst": {},
    "oasst_pairs": {},
}
# Named evaluation sets (rlhf.evaluate.prompt_sets) -> prompts; docs/data.md, table 3.
PROMPT_SET_COUNTS = {"mt_bench": 80, "vicuna": 80, "koala": 180, "user_oriented": 252, "gsm8k": 1319,
                     "oasst_en_100": 100, "oasst_lottery_250": 250}
JUDGE_PROMPTS = "eval/llm_judge_prompts.jsonl.gz"
USABLE_JUDGE_PROMPTS = {"pair-v2", "pair-math-v1"}   # the single-turn pairwise ones; docs/data.md, table 3
# Files no adapter of the project reads; docs/data.md lists them with what they hold.
UNREAD = {"eval/gsm8k_example_model_solutions.jsonl.gz", "eval/mt_bench_reference_answer_gpt-4.jsonl.gz",
          "eval/vicuna_bench_reference_answer_gpt-4.jsonl.gz", "eval/vicuna_eval_2023_06_prompt.jsonl.gz",
          "eval/vicuna_eval_2023_06_reviewer.jsonl.gz", "eval/alpaca_seed_tasks.jsonl.gz"}


def configured_sources() -> dict[str, list[dict]]:
    """data config -> its sources that read a file of the data kit (paths relative to the kit)."""
    out = {}
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for path in sorted((CONFIG_DIR / "data").glob("*.yaml")):
            if path.stem.endswith("_schema"):
                continue
            cfg = compose("train", overrides=[f"data={path.stem}", f"paths.data_dir={PLACEHOLDER}"])
            sources = OmegaConf.to_container(cfg.data, resolve=True).get("sources") or []
            real = [{**s, "path": s["path"][len(PLACEHOLDER) + 1:]} for s in sources
                    if isinstance(s.get("path"), str) and s["path"].startswith(PLACEHOLDER + "/")]
            if real:
                out[path.stem] = real
    return out


CONFIGURED = configured_sources()


def raw_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return handle.read().splitlines()


def raw_records(path: Path) -> list:
    return [json.loads(line) for line in raw_lines(path)]


def tally_of(data_dir: Path, source: dict) -> tuple[list[dict], SourceTally]:
    spec = {**source, "path": str(data_dir / source["path"])}
    tally = SourceTally(spec["path"])
    kind = "prompt" if source.get("kind") == "prompt" else "conversation"
    return load_source(spec, kind=kind, key="test", tally=tally), tally


def check_tally(data_dir: Path, source: dict, records: list[dict], tally: SourceTally) -> None:
    lines = raw_lines(data_dir / source["path"])
    assert all(line.strip() for line in lines)             # no blank line: every line is a record
    assert tally.read == len(lines)
    assert tally.parsed + sum(tally.skipped.values()) == tally.read
    assert tally.examples == len(records)
    limit = source.get("limit")
    if limit is None:
        parsed, examples, skipped = ADAPTER_COUNTS[(source["path"], source["adapter"])]
        assert (tally.parsed, tally.examples, dict(tally.skipped)) == (parsed, examples, skipped)


@pytest.mark.parametrize("config, index", [(c, i) for c, sources in CONFIGURED.items() for i in range(len(sources))])
def test_every_record_of_a_configured_file_is_parsed_or_skipped_with_a_reason(shared_data_dir, config, index):
    source = CONFIGURED[config][index]
    records, tally = tally_of(shared_data_dir, source)
    check_tally(shared_data_dir, source, records, tally)


@pytest.mark.parametrize("source", EXTRA_SOURCES, ids=lambda s: f"{s['path']}:{s['adapter']}")
def test_every_record_through_the_other_adapters_a_user_may_pick(shared_data_dir, source):
    records, tally = tally_of(shared_data_dir, source)
    check_tally(shared_data_dir, source, records, tally)


def test_every_configured_file_and_adapter_has_documented_counts():
    used = {(s["path"], s["adapter"]) for sources in CONFIGURED.values() for s in sources}
    used |= {(s["path"], s["adapter"]) for s in EXTRA_SOURCES}
    assert used == set(ADAPTER_COUNTS)


def _row(text: str, *cells: str) -> list[str]:
    """The cells of the one table row of docs/data.md whose leading cells are `cells`."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")]
    found = [row for row in rows if row[:len(cells)] == list(cells)]
    assert len(found) == 1, f"docs/data.md needs one row starting {cells}, found {len(found)}"
    return found[0]


def _number(cell: str) -> int:
    """The number a cell starts with ('1,319 (each with ...)' -> 1319)."""
    return int(re.match(r"[\d,]+", cell).group().replace(",", ""))


def test_docs_state_the_counts_next_to_the_data_configs():
    text = DOCS.read_text(encoding="utf-8")
    for (path, adapter), (parsed, examples, skipped) in ADAPTER_COUNTS.items():
        row = _row(text, f"`{path}`", f"`{adapter}`")
        assert [_number(c) for c in row[2:5]] == [parsed + sum(skipped.values()), parsed, examples]
        for reason, n in skipped.items():
            assert f"{n} {reason}" in row[5]
        if not skipped:
            assert row[5] == "–"
    for config, skips in MODULE_SKIPS.items():
        row = _row(text, f"`data={config}`")
        for reason, n in skips.items():
            assert f"{n} {reason}" in row[-1]
        if not skips:
            assert row[-1] == "–"
    for name, count in PROMPT_SET_COUNTS.items():
        assert _number(_row(text, f"`{name}`")[2]) == count
    for path in UNREAD:
        assert f"`{path}`" in text


# ---- the data modules: what training keeps of each configured file ----

@pytest.fixture(scope="module")
def tokenizer():
    from rlhf.core.models import load_tokenizer

    return load_tokenizer("embedded:smollm2-135m")   # the tiny model's and the default model's


@pytest.mark.parametrize("config", sorted(MODULE_SKIPS))
def test_the_data_module_drops_only_counted_examples(shared_data_dir, tokenizer, config):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"data={config}", f"paths.data_dir={shared_data_dir}"])
    module = instantiate(cfg.data, tokenizer=tokenizer)
    module.setup("fit")
    assert set(module.tallies) == {f"data.sources.{i}" for i in range(len(CONFIGURED[config]))}
    for key, source in zip(sorted(module.tallies), CONFIGURED[config]):
        parsed, examples, skipped = ADAPTER_COUNTS[(source["path"], source["adapter"])]
        tally = module.tallies[key]
        assert (tally.parsed, tally.examples, dict(tally.skipped)) == (parsed, examples, skipped)
    dropped = {reason: n for reason, n in module.skipped.items() if n}
    assert dropped == MODULE_SKIPS[config]
    # every example made is kept or dropped under a reason (a preference example is a group; each
    # group dropped here has one pair, so dropped pairs = dropped groups)
    made = sum(tally.examples for tally in module.tallies.values())
    kept = len(module.records) if config == "gsm8k_prompts" else len(module.train_set) + len(module.val_set or [])
    assert kept == made - sum(dropped.values())


# ---- what the counts are, worked out from the raw records ----

def test_hh_rlhf_skips_are_the_pairs_whose_contexts_differ_and_empty_replies(shared_data_dir):
    """The rule read off the raw text: the dialogue before the last '\\n\\nAssistant: ' must be the
    same on both sides and end with a Human turn; a reply that is blank there is an empty response."""
    raw = raw_records(shared_data_dir / "preference/hh_rlhf_harmless_base_test_dev.jsonl.gz")
    assert len(raw) == 1800   # README
    different, empty = [], []
    for number, record in enumerate(raw, start=1):
        (head_c, _, reply_c), (head_r, _, reply_r) = (record[side].rpartition("\n\nAssistant: ")
                                                      for side in ("chosen", "rejected"))
        if head_c != head_r or not head_c.rpartition("\n\n")[2].startswith("Human: "):
            different.append(number)
        elif not reply_c.strip() or not reply_r.strip():
            empty.append(number)
    assert len(different) == ADAPTER_COUNTS[("preference/hh_rlhf_harmless_base_test_dev.jsonl.gz", "hh_rlhf")][2][
        HH_DIFFERENT_CONTEXTS]
    tally = SourceTally("hh")
    load_records(shared_data_dir / "preference/hh_rlhf_harmless_base_test_dev.jsonl.gz", "hh_rlhf", tally=tally)
    assert tally.skipped_records[HH_DIFFERENT_CONTEXTS] == different
    assert len(empty) == MODULE_SKIPS["hh_rlhf_pairs"][EMPTY_PAIR]


def test_alpaca_empty_outputs_are_the_sft_skips(shared_data_dir):
    raw = raw_records(shared_data_dir / "sft/alpaca_data_5000.jsonl.gz")
    assert sum(not r["output"].strip() for r in raw) == MODULE_SKIPS["alpaca"][EMPTY_RESPONSE]


def _usable(message: dict) -> bool:
    return not message.get("deleted") and message.get("review_result") is not False


def _oasst_roots(data_dir: Path) -> dict[str, list[dict]]:
    return {"sft/oasst_en_100_tree.jsonl.gz": [r["prompt"] for r in raw_records(data_dir / "sft/oasst_en_100_tree.jsonl.gz")],
            "preference/oasst_en_100_message.jsonl.gz": raw_records(data_dir / "preference/oasst_en_100_message.jsonl.gz")}


def _messages(node: dict):
    yield node
    for reply in node.get("replies") or []:
        yield from _messages(reply)


def test_oasst_counts_from_the_raw_trees(shared_data_dir):
    for path, roots in _oasst_roots(shared_data_dir).items():
        assert len(roots) == 100 and sum(1 for root in roots for _ in _messages(root)) == 1167   # README
        groups = [[r["rank"] for r in m.get("replies") or [] if _usable(r) and r.get("rank") is not None]
                  for root in roots for m in _messages(root) if m["role"] == "prompter"]
        groups = [g for g in groups if len(g) >= 2]
        assert len(groups) == ADAPTER_COUNTS[(path, "oasst_ranked")][1] == 212           # README
        assert sum(len(g) * (len(g) - 1) // 2 for g in groups) == 754                   # README
        # one thread per tree whose root has a usable assistant reply
        threads = sum(any(_usable(r) and r["role"] == "assistant" for r in root.get("replies") or []) for root in roots)
        assert threads == ADAPTER_COUNTS[(path, "oasst_threads")][1]
        # prompts: the prompter turns of each top-ranked thread that an assistant turn answers
        prompts = 0
        for root in roots:
            node, path_roles = root, []
            while node is not None:
                path_roles.append(node["role"])
                replies = [r for r in node.get("replies") or [] if _usable(r)]
                ranked = [r for r in replies if r.get("rank") is not None]
                node = min(ranked, key=lambda r: r["rank"]) if ranked else (replies[0] if replies else None)
            prompts += sum(1 for a, b in zip(path_roles, path_roles[1:]) if (a, b) == ("prompter", "assistant"))
        assert prompts == ADAPTER_COUNTS[(path, "oasst_prompts")][1]


def test_records_of_real_files_have_the_shape_training_expects(shared_data_dir):
    gsm8k, _ = tally_of(shared_data_dir, {"path": "sft/gsm8k_train.jsonl.gz", "adapter": "gsm8k"})
    assert not any("<<" in r["messages"][1]["content"] for r in gsm8k)
    assert all("####" in r["messages"][1]["content"] for r in gsm8k)
    threads, _ = tally_of(shared_data_dir, {"path": "sft/oasst_en_100_tree.jsonl.gz", "adapter": "oasst_threads"})
    for thread in threads:
        roles = [m["role"] for m in thread["messages"]]
        assert roles[0] == "user" and roles[-1] == "assistant" and all(a != b for a, b in zip(roles, roles[1:]))
    hh, _ = tally_of(shared_data_dir, {"path": "preference/hh_rlhf_harmless_base_test_dev.jsonl.gz",
                                       "adapter": "hh_rlhf"})
    assert all(g["prompt"][-1]["role"] == "user" and g["ranks"] == [0, 1] for g in hh)


# ---- the evaluation files ----

@pytest.mark.parametrize("name", sorted(PROMPT_SETS))
def test_every_record_of_a_prompt_set_becomes_a_prompt(shared_data_dir, name):
    """The prompt-set loaders skip nothing: a record they cannot read stops them (DataError)."""
    lines = raw_lines(shared_data_dir / "eval" / PROMPT_SETS[name][0])
    records = load_prompt_set(name, shared_data_dir)
    assert len(records) == len(lines) == PROMPT_SET_COUNTS[name]
    assert len({r["id"] for r in records}) == len(records)
    assert all(r["prompt"][-1]["role"] == "user" and r["prompt"][-1]["content"].strip() for r in records)


def test_every_judge_prompt_loads_or_is_refused_with_its_reason(shared_data_dir):
    path = shared_data_dir / JUDGE_PROMPTS
    loaded, refused = set(), Counter()
    for record in raw_records(path):
        try:
            load_fastchat_judge_prompt(record["name"], path)
            loaded.add(record["name"])
        except ConfigError as error:
            assert re.search(r"is not a single-turn pairwise prompt", str(error))
            refused[record["type"]] += 1
    assert loaded == USABLE_JUDGE_PROMPTS
    assert refused == {"pairwise": 2, "single": 4}   # the multi-turn pairwise ones and every single-answer one


def test_every_file_of_the_kit_is_read_by_an_adapter_or_listed_as_unread(shared_data_dir):
    manifest = json.loads((shared_data_dir / "MANIFEST.json").read_text())
    read = {path for path, _ in ADAPTER_COUNTS} | {f"eval/{PROMPT_SETS[n][0]}" for n in PROMPT_SETS} | {JUDGE_PROMPTS}
    assert read.isdisjoint(UNREAD)
    assert {entry["file"] for entry in manifest} == read | UNREAD
    for entry in manifest:   # every line of every file is one JSON record, as many as MANIFEST says
        assert len(raw_records(shared_data_dir / entry["file"])) == entry["records"]
