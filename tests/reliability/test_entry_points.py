"""Every entry point against every broken input the corpus makes (tests/reliability/corpus.py):
exit status 2, one `error:` line naming the file and line (or the key) and what was expected, no
traceback, no output or a complete one (never a partial one), and the input left as it was. Valid
inputs among them (a blank line between records, an extra field, a 1 MB text, ...) must run to a
complete output instead.

The cases run each entry point's own `main` in this process; `test_python_m_*` run a few of them as
real `python -m` processes (slow). RELIABILITY.md's ledger is printed from the same cases by
tests/reliability/ledger.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cases import Case, all_cases, run_case  # noqa: E402
from corpus import FAULTS, write_lines  # noqa: E402
from entry_points import ENTRY_POINTS, JUDGMENTS, PAIRS, Resources  # noqa: E402
from tests_conf import REPO  # noqa: E402

# Faults every training stage meets in the same reader (rlhf.data.jsonl): run for SFT by default and
# for the other stages with -m slow.
SHARED_READER = {"missing_file", "empty_file", "blank_line_only", "truncated_gzip", "not_utf8", "json_array",
                 "broken_json", "not_an_object", "extra_field", "blank_line_between"}


def is_slow(case: Case) -> bool:
    training = case.entry.startswith("train stage=")
    if training and case.expect == "accept":
        return True   # these train a step
    if training and case.entry != "train stage=sft" and case.input in SHARED_READER:
        return True
    return case.input == "huge_line" and case.expect == "accept"


CASES = [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if is_slow(c) else []) for c in all_cases()]


@pytest.fixture(scope="session")
def resources(tmp_path_factory) -> Resources:
    return Resources(tmp_path_factory.mktemp("reliability_resources"))


def is_complete(path: Path) -> bool:
    """A JSONL file whose every line is a JSON object, a model export with its config and weights, or
    a report folder with both documents."""
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        return bool(lines) and all(isinstance(json.loads(line), dict) for line in lines)
    if (path / "merged").is_dir():
        return (path / "merged" / "config.json").is_file() and any((path / "merged").glob("*.safetensors"))
    return (path / "report.md").is_file() and (path / "report.html").is_file()


def names_the_place(message: str, case: Case, result) -> bool:
    """The faulty line by number (or, where rows are matched by id, by its id)."""
    if result.line is None:
        return True
    schema = ENTRY_POINTS[case.entry].schema
    # the faulty (last) record's id, or the first record's, which a duplicate takes
    ids = [str(schema.good[i][schema.id_field]) for i in (-1, 0)] if schema.id_field else []
    return any(f"{word} {result.line}" in message for word in ("record", "line")) or any(
        f"id {i!r}" in message or f"id {i}" in message or f", {i!r})" in message for i in ids)


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_clear_error_and_no_partial_output(case: Case, resources, tmp_path):
    result = run_case(case, tmp_path / "work", resources)
    outcome = result.outcome
    assert "Traceback" not in outcome.stderr, outcome.stderr[-3000:]
    if case.expect == "error":
        assert outcome.code == 2, f"exit {outcome.code}; stderr: {outcome.stderr[-2000:]}"
        assert len(outcome.error_lines) == 1, outcome.stderr[-2000:]
        message = outcome.error_lines[0]
        assert outcome.stderr.rstrip().endswith(message), "the error is the last thing printed"
        assert result.expected_name in message, message
        assert names_the_place(message, case, result), f"line {result.line} not named: {message}"
        where = message.find(result.expected_name) + len(result.expected_name)
        assert len(message) - where > 15, f"no word on what was expected: {message}"
        assert not [p for p in result.outputs if p.exists()], f"output written on error: {result.outputs}"
    else:
        assert outcome.code == 0, outcome.stderr[-3000:]
        assert all(is_complete(p) for p in result.outputs), result.outputs
    assert result.input_unchanged, "the entry point changed its input"
    assert not result.leftovers, f"staging files left behind: {result.leftovers}"


def test_every_entry_point_and_fault_is_covered():
    entries = {c.entry for c in all_cases()}
    stages = {f"train stage={s}" for s in ("sft", "reward", "reward_absolute", "ppo", "dpo")}
    commands = {f"evaluate {c}" for c in ("generate", "judge", "stats", "report", "agreement", "gsm8k", "accuracy",
                                          "benchmarks")}
    assert stages | commands | {"score", "train", "pipeline", "model conversion"} <= entries
    assert any("human" in e for e in entries)
    tried = {c.input for c in all_cases() if c.kind == "file"}
    assert set(FAULTS) <= tried


# ---------------------------------------------------------------- real processes


def python_m(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def assert_one_line(done: subprocess.CompletedProcess, *named: str) -> str:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
    assert all(name in lines[0] for name in named), lines[0]
    return lines[0]


@pytest.mark.slow
def test_python_m_score_on_a_file_that_is_not_utf8(resources, tmp_path):
    path = FAULTS["not_utf8"].write(tmp_path, PAIRS)[0]
    done = python_m("rlhf.score", "--model", str(resources.reward_model), "--input", str(path),
                    "--output", str(tmp_path / "out.jsonl"))
    assert_one_line(done, str(path), "record 4", "UTF-8")
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
def test_python_m_evaluate_report_on_duplicate_judgments(tmp_path):
    path = FAULTS["duplicate_ids"].write(tmp_path, JUDGMENTS)[0]
    done = python_m("rlhf.evaluate", "report", "--judgments", str(path), "--out", str(tmp_path / "report"))
    assert_one_line(done, str(path), "record 2", "line 1")
    assert not (tmp_path / "report").exists()


@pytest.mark.slow
def test_python_m_train_on_a_typo_that_hydra_rejects(tmp_path):
    done = python_m("rlhf.train", "model=tiny", "stage.module.optim.lrr=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_line(done, "'stage.module.optim.lrr'", "did you mean 'lr'")


@pytest.mark.slow
def test_python_m_train_on_a_broken_data_file_ends_with_the_error(tmp_path):
    path = FAULTS["missing_field"].write(tmp_path, PAIRS)[0]
    done = python_m("rlhf.train", "stage=reward", "model=tiny", "trainer=debug", "logger=none", "data=pairs_jsonl",
                    f"data.sources.0.path={path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    # Lightning logs its set-up lines before the data is read; the error is the one last line.
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [done.stderr.strip().splitlines()[-1]]
    assert f"{path}, record 4: missing field 'rejected'" in errors[0]
    assert not (tmp_path / "run" / "model").exists()


@pytest.mark.slow
def test_python_m_pipeline_and_model_conversion_name_the_key(tmp_path):
    done = python_m("rlhf.pipeline", "model=tiny", "stages=[sft,sampel]", f"run_dir={tmp_path / 'run'}",
                    f"hydra.run.dir={tmp_path / 'hydra'}")
    assert_one_line(done, "'stages'", "'sampel'")
    assert not (tmp_path / "run" / "pipeline.json").exists()
    assert_one_line(python_m("rlhf.core.models", "--name", "smollm3"), "'smollm3'", "smollm2-135m")


@pytest.mark.slow
def test_console_script_finds_the_configs_from_any_folder(tmp_path):
    """`rlhf-train` (the installed script) composes the repository's configs from another folder."""
    script = Path(sys.executable).with_name("rlhf-train")
    if not script.exists():
        pytest.skip("the rlhf-train script is not installed in this environment")
    done = subprocess.run([str(script), "model=tiny", "+lr=0.1", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert_one_line(done, "'lr'", "unknown key for the top level")


def test_blank_line_between_records_is_skipped_not_counted(tmp_path):
    """The accepted blank line keeps every record and the numbering of the lines after it."""
    from rlhf.data.jsonl import iter_jsonl

    path = write_lines(tmp_path / "x.jsonl", [{"a": 1}, "", {"a": 2}])
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (3, {"a": 2})]
