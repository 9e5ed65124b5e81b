"""The bad-input suite's cases: every (entry point, corpus input) pair, every (entry point, broken
model folder) pair and every config error, each run in a fresh work folder with a `Result` that
says what a user would have seen and what was left on disk."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from corpus import FAULTS, MODEL_FAULTS, fault_names
from entry_points import (CLI_CALLS, CONFIG_CASES, ENTRY_POINTS, PIPELINE_CONFIG_BASE, TRAIN_CONFIG_BASE, Outcome,
                          Resources, _hydra, pipeline_main, run_in_process, train_main)


OTHER_MODEL = "model_of_another_kind"


@dataclass(frozen=True)
class Case:
    entry: str          # ENTRY_POINTS key, or "train" / "pipeline" for config cases
    kind: str           # "file", "model" or "config"
    input: str          # corpus fault, model fault, or what is wrong with the config
    expect: str         # "error" (exit 2, one line) or "accept" (exit 0, complete output)

    @property
    def id(self) -> str:
        return f"{self.entry}|{self.input}".replace(" ", "_")


def all_cases() -> list[Case]:
    cases = []
    for entry in ENTRY_POINTS.values():
        if entry.schema is not None:
            cases += [Case(entry.name, "file", name, "accept" if name in entry.accepts else "error")
                      for name in fault_names(entry.schema)]
        if entry.model_argv is not None:
            cases += [Case(entry.name, "model", name, "error") for name in MODEL_FAULTS]
        if entry.other_model is not None:
            cases.append(Case(entry.name, "model", OTHER_MODEL, "error"))
    cases += [Case(entry, "config", what, "error") for entry, what, _, _ in CONFIG_CASES]
    return cases


def file_digest(path: Path) -> str | None:
    if path.is_dir():
        return hashlib.sha256("".join(f"{p}:{file_digest(p)}" for p in sorted(path.rglob("*")) if p.is_file())
                              .encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


@dataclass
class Result:
    case: Case
    outcome: Outcome
    input_path: Path | None      # the broken input (file or model folder)
    line: int | None             # the line that holds the fault, when one does
    input_unchanged: bool
    outputs: list[Path]
    expected_name: str           # what the message must name: the file, or the key / group
    leftovers: list[Path]        # staging files left beside the outputs (a partial write)


def run_case(case: Case, work: Path, resources: Resources) -> Result:
    work.mkdir(parents=True, exist_ok=True)
    if case.kind == "config":
        return _run_config(case, work, resources)
    entry = ENTRY_POINTS[case.entry]
    if case.kind == "file":
        path, line = FAULTS[case.input].write(work, entry.schema)
        argv = entry.argv(path, work, resources)
    elif case.input == OTHER_MODEL:
        path, line = getattr(resources, entry.other_model), None
        argv = entry.model_argv(path, work, resources)
    else:
        path, line = MODEL_FAULTS[case.input][1](work, getattr(resources, entry.model_kind)), None
        argv = entry.model_argv(path, work, resources)
    before = file_digest(path)
    outcome = entry.run(argv)
    outputs = entry.outputs(work)
    leftovers = [p for out in outputs for p in out.parent.glob(f".{out.name}*")] if outputs else []
    return Result(case, outcome, path, line, file_digest(path) == before, outputs, path.name, leftovers)


def _run_config(case: Case, work: Path, resources: Resources) -> Result:
    (entry, _, arguments, names) = next(c for c in CONFIG_CASES if c[0] == case.entry and c[1] == case.input)
    arguments = arguments(work, resources) if callable(arguments) else arguments
    if entry == "train":
        argv = [*TRAIN_CONFIG_BASE, f"hydra.run.dir={work / 'run'}", *arguments]
        call, outputs = _hydra(train_main), [work / "run" / "model"]
    elif entry == "pipeline":
        argv = [*PIPELINE_CONFIG_BASE, f"run_dir={work / 'run'}", f"hydra.run.dir={work / 'hydra'}", *arguments]
        call, outputs = _hydra(pipeline_main), [work / "run" / "pipeline.json"]
    else:
        argv, call, outputs = arguments, CLI_CALLS[entry], []
    outcome = run_in_process(call(argv))
    return Result(case, outcome, None, None, True, outputs, names, [])
