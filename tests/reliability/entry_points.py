"""Every entry point as the bad-input suite runs it: the input file it reads (its schema), its
command line for a given input, what it writes, and which corpus inputs it accepts. Every other
input must stop it with exit status 2 and one line naming the file and line (or the key).

Each entry point runs in this process through its own `main` (`python -m` runs the same function);
`run_in_process` returns what a shell would see: exit status, stderr and stdout.
"""

from __future__ import annotations

import contextlib
import io
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from corpus import Schema, write_lines

Q1 = [{"role": "user", "content": "Name a fruit."}]
Q2 = [{"role": "user", "content": "Name a colour."}]
HYDRA_QUIET = ["hydra/job_logging=none", "hydra/hydra_logging=none"]


@dataclass
class Outcome:
    code: int | str          # exit status, or "crash" for an exception that escaped main
    stderr: str
    stdout: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error: ")]


def run_in_process(call: Callable[[], object]) -> Outcome:
    """Run an entry point's main as `python -m` would: exit status from SystemExit (0 when it
    returns), an escaping exception reported as "crash" with its traceback on stderr."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            call()
            code: int | str = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            if isinstance(stop.code, str):
                print(stop.code, file=sys.stderr)
        except BaseException:   # noqa: BLE001  (what would reach the user as a traceback)
            traceback.print_exc()
            code = "crash"
    return Outcome(code, err.getvalue(), out.getvalue())


def hydra_call(main: Callable[[], None], overrides: list[str]) -> Callable[[], None]:
    def call():
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
        saved = sys.argv
        sys.argv = ["prog", *overrides]
        try:
            main()
        finally:
            sys.argv = saved
            GlobalHydra.instance().clear()
    return call


def train_main():
    from rlhf.train import main
    return main


def pipeline_main():
    from rlhf.pipeline import main
    return main


def argparse_main(module: str) -> Callable[[list[str]], Callable[[], None]]:
    """`python -m <module>`: its main wrapped by exit_on_error, exactly as its `__main__` block runs it."""
    def bind(argv: list[str]):
        def call():
            import importlib

            from rlhf.core.errors import exit_on_error

            exit_on_error(importlib.import_module(module).main)(argv)
        return call
    return bind


# ---------------------------------------------------------------- inputs the entry points share


class Resources:
    """Saved tiny models and good companion files, built once per session in `root`."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    @cached_property
    def tokenizer(self):
        from rlhf.core.models import load_tokenizer
        return load_tokenizer("embedded:smollm2-135m")

    @cached_property
    def causal_lm(self) -> Path:
        """A saved tiny causal LM (an SFT-like export): a model folder that is not a reward model."""
        from rlhf.core.models import load_causal_lm

        out = self.root / "causal_lm"
        load_causal_lm("tiny", tokenizer=self.tokenizer).save_pretrained(out, safe_serialization=True)
        self.tokenizer.save_pretrained(out)
        return out

    @cached_property
    def reward_model(self) -> Path:
        from rlhf.reward_model.module import RewardModule

        module = RewardModule(model={"source": "tiny", "tokenizer": "embedded:smollm2-135m", "dtype": "float32"},
                              max_length=64, min_prompt_tokens=8)
        module.configure_model()
        return Path(module.export(self.root / "rm"))

    @cached_property
    def generations_b(self) -> Path:
        return write_lines(self.root / "generations_b.jsonl", [
            {"id": "1", "dataset": "d", "prompt": Q1, "response": "Apple.", "model": "b"},
            {"id": "2", "dataset": "d", "prompt": Q2, "response": "Blue.", "model": "b"}])

    @cached_property
    def judgments(self) -> Path:
        return write_lines(self.root / "judgments.jsonl", [
            {"id": "1", "dataset": "d", "model_a": "x", "model_b": "y", "winner": "a"},
            {"id": "2", "dataset": "d", "model_a": "x", "model_b": "y", "winner": "b"}])

    @cached_property
    def samples(self) -> Path:
        """Samples whose prompts and responses are those of the LABELLING file's good records."""
        return write_lines(self.root / "samples.jsonl", [
            {"id": "p1", "prompt": Q1, "responses": ["Apple.", "A car."]},
            {"id": "p2", "prompt": Q2, "responses": ["Blue.", "Seven."]}])


# ---------------------------------------------------------------- schemas

SFT = Schema("sft", [{"prompt": f"Question {i}?", "response": f"Answer {i}."} for i in range(4)],
             required="response", text="prompt", wrong_type=["not", "text"])
PAIRS = Schema("pairs", [{"prompt": f"Question {i}?", "chosen": f"A fine answer {i}.", "rejected": "No."}
                         for i in range(4)], required="rejected", text="chosen", wrong_type=["not", "text"])
LABELS = Schema("labels", [{"prompt": f"Question {i}?", "response": f"Answer {i}.", "label": 0.25 * i}
                           for i in range(4)],
                required="label", text="response", number="label", out_of_range=("label", 1.5), wrong_type="high")
PROMPTS = Schema("prompts", [{"id": f"q{i}", "prompt": f"Question {i}?"} for i in range(4)],
                 required="prompt", text="prompt", id_field="id", wrong_type=42)
SAMPLES = Schema("samples", [{"id": "p1", "prompt": Q1, "responses": ["Apple.", "A car."]},
                             {"id": "p2", "prompt": Q2, "responses": ["Blue.", "Seven."]}],
                 required="responses", text=("prompt", 0, "content"), id_field="id", wrong_type="Apple.")
LABELLING = Schema("labelling", [
    {"prompt_id": "p1", "prompt": Q1, "responses": [{"response_id": "r0", "text": "Apple."},
                                                    {"response_id": "r1", "text": "A car."}], "ranks": [1, 2]},
    {"prompt_id": "p2", "prompt": Q2, "responses": [{"response_id": "r0", "text": "Blue."},
                                                    {"response_id": "r1", "text": "Seven."}], "ranks": [1, 2]}],
    required="responses", text="prompt_id", id_field="prompt_id", number=("ranks", 0), out_of_range=("ranks", [1, 5]),
    wrong_type="Apple.")
GENERATIONS = Schema("generations", [
    {"id": "1", "dataset": "d", "prompt": Q1, "response": "A car.", "model": "a"},
    {"id": "2", "dataset": "d", "prompt": Q2, "response": "Seven.", "model": "a"}],
    required="response", text="response", id_field="id", wrong_type=["not", "text"])
JUDGMENTS = Schema("judgments", [
    {"id": "1", "dataset": "d", "model_a": "x", "model_b": "y", "winner": "a"},
    {"id": "2", "dataset": "d", "model_a": "x", "model_b": "y", "winner": "tie"}],
    required="winner", text="id", id_field="id", out_of_range=("winner", "c"), wrong_type=1)
GSM8K = Schema("gsm8k_generations", [
    {"id": "g1", "dataset": "gsm8k", "prompt": Q1, "response": "So #### 4", "reference": "4", "model": "a"},
    {"id": "g2", "dataset": "gsm8k", "prompt": Q2, "response": "#### 7", "reference": "6", "model": "a"}],
    required="reference", text="response", id_field="id", number="reference", wrong_type=["4"])
ACCURACY = Schema("accuracy_generations", [
    {"id": "a1", "prompt": Q1, "response": "#### 4", "metadata": {"answer": 4}},
    {"id": "a2", "prompt": Q2, "response": "#### 7", "metadata": {"answer": 6}}],
    required="response", text="response", id_field="id", number=("metadata", "answer"), wrong_type=["#### 4"])


# ---------------------------------------------------------------- entry points


@dataclass(frozen=True)
class EntryPoint:
    name: str                                          # how a user calls it
    schema: Schema | None
    argv: Callable[[Path, Path, Resources], list[str]]  # (input, work folder, resources) -> arguments
    call: Callable[[list[str]], Callable[[], None]]
    outputs: Callable[[Path], list[Path]]              # what it writes, under the work folder
    accepts: frozenset[str] = frozenset()              # corpus inputs that are valid for it
    model_argv: Callable[[Path, Path, Resources], list[str]] | None = None   # arguments with a model folder
    model_kind: str = "causal_lm"                      # the Resources model its broken folders are made from
    other_model: str | None = None                     # a Resources model of another kind, which it must refuse

    def run(self, argv: list[str]) -> Outcome:
        return run_in_process(self.call(argv))


def _hydra(main_of: Callable[[], Callable[[], None]]):
    return lambda argv: hydra_call(main_of(), argv)


TRAIN_BASE = ["model=tiny", "trainer=debug", "trainer.max_steps=1", "trainer.limit_val_batches=0", "logger=none",
              "callbacks=none", *HYDRA_QUIET]


def train_argv(stage: str, data: str, *extra: str):
    def argv(path: Path, work: Path, _: Resources) -> list[str]:
        return [f"stage={stage}", f"data={data}", f"data.sources.0.path={path}", *TRAIN_BASE,
                f"hydra.run.dir={work / 'run'}", *extra]
    return argv


def train_model_argv(stage: str, data: str, schema: Schema, *extra: str):
    """The stage on a model folder (model=hub, the way a user names a local folder)."""
    def argv(model: Path, work: Path, resources: Resources) -> list[str]:
        data_file = write_lines(work / f"{schema.name}.jsonl", schema.good)
        return [f"stage={stage}", f"data={data}", f"data.sources.0.path={data_file}", *TRAIN_BASE[1:],
                f"hydra.run.dir={work / 'run'}", "model=hub", f"model.source={model}", "model.dtype=float32", *extra]
    return argv


def export_of(work: Path) -> list[Path]:
    return [work / "run" / "model"]


# Accepted by every entry point: they are valid JSONL.
VALID = frozenset({"extra_field", "blank_line_between"})
RESPONSE_TEXT = VALID | {"huge_line", "empty_string"}   # free text: any length is cut to fit, "" is an answer

PPO_EXTRA = ("reward_fn=word_count", "data.batch_size=2", "stage.module.rollout.max_new_tokens=2")
POLICY_FROM = "policy.jsonl"


def pipeline_annotate_argv(path: Path, work: Path, _: Resources) -> list[str]:
    return ["model=tiny", "stages=[annotate]", f"artifacts.sample={path}", f"run_dir={work / 'run'}",
            f"hydra.run.dir={work / 'hydra'}", *HYDRA_QUIET]


def human_import_argv(path: Path, work: Path, resources: Resources) -> list[str]:
    return ["model=tiny", "stages=[annotate]", f"artifacts.sample={resources.samples}", "annotator=human",
            f"annotator.path={path}", f"run_dir={work / 'run'}", f"hydra.run.dir={work / 'hydra'}", *HYDRA_QUIET]


def pipeline_sample_argv(model: Path, work: Path, _: Resources) -> list[str]:
    return ["model=tiny", "stages=[sample]", f"artifacts.sft={model}", "sample.prompts.n=2", "sample.k=2",
            "sample.decoding.max_new_tokens=2", f"run_dir={work / 'run'}", f"hydra.run.dir={work / 'hydra'}",
            *HYDRA_QUIET]


def rankings_of(work: Path) -> list[Path]:
    return [work / "run" / "annotate" / "rankings.jsonl"]


SCORE = argparse_main("rlhf.score")
EVALUATE = argparse_main("rlhf.evaluate.__main__")
CLI_CALLS = {"model conversion": argparse_main("rlhf.core.models"), "score": SCORE, "evaluate stats": EVALUATE}

ENTRY_POINTS: dict[str, EntryPoint] = {e.name: e for e in [
    EntryPoint("train stage=sft", SFT, train_argv("sft", "jsonl", "data.val_fraction=0"), _hydra(train_main),
               export_of, VALID | {"huge_line", "empty_string"},
               train_model_argv("sft", "jsonl", SFT, "data.val_fraction=0")),
    EntryPoint("train stage=reward", PAIRS, train_argv("reward", "pairs_jsonl", "data.val_fraction=0"),
               _hydra(train_main), export_of, RESPONSE_TEXT),
    EntryPoint("train stage=reward_absolute", LABELS, train_argv("reward_absolute", "absolute_jsonl",
                                                                 "data.val_fraction=0"),
               _hydra(train_main), export_of, RESPONSE_TEXT),
    EntryPoint("train stage=ppo", PROMPTS, train_argv("ppo", "prompts_jsonl", *PPO_EXTRA), _hydra(train_main),
               export_of, VALID | {"duplicate_ids", "empty_string", "huge_line"}),   # overlong: a counted skip
    EntryPoint("train stage=dpo", PAIRS, train_argv("dpo", "pairs_jsonl", "data.val_fraction=0"), _hydra(train_main),
               export_of, RESPONSE_TEXT),
    EntryPoint("pipeline stages=[annotate]", SAMPLES, pipeline_annotate_argv, _hydra(pipeline_main), rankings_of,
               VALID | {"huge_line", "empty_string", "duplicate_ids"}),
    EntryPoint("pipeline annotator=human (human-annotation import)", LABELLING, human_import_argv,
               _hydra(pipeline_main), rankings_of, VALID | {"huge_line"}),
    EntryPoint("score", PAIRS,
               lambda path, work, r: ["--model", str(r.reward_model), "--input", str(path),
                                      "--output", str(work / "scored.jsonl")],
               SCORE, lambda work: [work / "scored.jsonl"], RESPONSE_TEXT,
               lambda model, work, r: ["--model", str(model),
                                       "--input", str(write_lines(work / "pairs.jsonl", PAIRS.good)),
                                       "--output", str(work / "scored.jsonl")], "reward_model", "causal_lm"),
    EntryPoint("evaluate generate", PROMPTS,
               lambda path, work, r: ["generate", "--model", "tiny", "--prompts-file", str(path), "--out",
                                      str(work / "gen.jsonl"), "--max-new-tokens", "2", "--max-prompt-tokens", "64"],
               lambda argv: EVALUATE(argv), lambda work: [work / "gen.jsonl"], VALID | {"huge_line", "not_an_object"},
               lambda model, work, r: ["generate", "--model", str(model), "--prompts-file",
                                       str(write_lines(work / "prompts.jsonl", PROMPTS.good)), "--out",
                                       str(work / "gen.jsonl"), "--max-new-tokens", "2"]),
    EntryPoint("evaluate judge", GENERATIONS,
               lambda path, work, r: ["judge", "--a", str(path), "--b", str(r.generations_b), "--judge", "reward_model",
                                      "--reward-model", str(r.reward_model), "--out", str(work / "judgments.jsonl")],
               lambda argv: EVALUATE(argv), lambda work: [work / "judgments.jsonl"], RESPONSE_TEXT,
               lambda model, work, r: ["judge", "--a", str(write_lines(work / "a.jsonl", GENERATIONS.good)), "--b",
                                       str(r.generations_b), "--judge", "reward_model", "--reward-model", str(model),
                                       "--out", str(work / "judgments.jsonl")], "reward_model", "causal_lm"),
    EntryPoint("evaluate stats", JUDGMENTS, lambda path, work, r: ["stats", "--judgments", str(path)],
               lambda argv: EVALUATE(argv), lambda work: [], VALID | {"huge_line"}),
    EntryPoint("evaluate report", JUDGMENTS,
               lambda path, work, r: ["report", "--judgments", str(path), "--out", str(work / "report")],
               lambda argv: EVALUATE(argv), lambda work: [work / "report"], VALID | {"huge_line"}),
    EntryPoint("evaluate agreement", JUDGMENTS,
               lambda path, work, r: ["agreement", "--predicted", str(path), "--reference", str(r.judgments)],
               lambda argv: EVALUATE(argv), lambda work: [], VALID | {"huge_line"}),
    EntryPoint("evaluate gsm8k", GSM8K, lambda path, work, r: ["gsm8k", "--generations", str(path)],
               lambda argv: EVALUATE(argv), lambda work: [], RESPONSE_TEXT | {"duplicate_ids"}),
    EntryPoint("evaluate accuracy", ACCURACY,
               lambda path, work, r: ["accuracy", "--generations", str(path), "--reward", "math_answer", "--scored",
                                      str(work / "scored.jsonl")],
               lambda argv: EVALUATE(argv), lambda work: [work / "scored.jsonl"], RESPONSE_TEXT | {"duplicate_ids"}),
    EntryPoint("evaluate benchmarks", None, None, lambda argv: EVALUATE(argv), lambda work: [],
               model_argv=lambda model, work, r: ["benchmarks", "--model", str(model), "--limit", "1"]),
    EntryPoint("pipeline stages=[sample]", None, None, _hydra(pipeline_main),
               lambda work: [work / "run" / "sample" / "samples.jsonl"], model_argv=pipeline_sample_argv),
]}


# ---------------------------------------------------------------- config errors (no model is loaded)

TRAIN_CONFIG_BASE = ["model=tiny", "trainer=debug", "logger=none", "callbacks=none", *HYDRA_QUIET]
PIPELINE_CONFIG_BASE = ["model=tiny", "stages=[annotate]", *HYDRA_QUIET]
CONFIG_CASES: list[tuple[str, str, list[str] | Callable[[Path, Resources], list[str]], str]] = [
    # (entry point, what is wrong, arguments (or a function of the work folder and resources that makes
    # them), what the message must name: the key, group or file)
    ("train", "unknown top-level key", ["+lr=0.1"], "'lr'"),
    ("train", "top-level key of the wrong type", ["seed=abc"], "'seed'"),
    ("train", "required group removed", ["~data"], "'data'"),
    ("train", "unknown group option", ["data=alpacca"], "'data'"),
    ("train", "override that does not parse", ["trainer.max_steps=[1,"], "override"),
    ("train", "unknown key, depth 2 (untyped Trainer)", ["trainer.max_stpes=3"], "'trainer.max_stpes'"),
    ("train", "unknown key added with +, depth 2", ["+trainer.max_stpes=3"], "'trainer.max_stpes'"),
    ("train", "wrong type, depth 2", ["trainer.max_steps=abc"], "'trainer.max_steps'"),
    ("train", "unknown key, depth 2 (typed data)", ["data.batch_sizee=2"], "'data.batch_sizee'"),
    ("train", "wrong type, depth 2 (typed data)", ["data.batch_size=abc"], "'data.batch_size'"),
    ("train", "wrong type, depth 2 (section replaced by a number)", ["stage.module=3"], "'stage.module'"),
    ("train", "unknown key, depth 3", ["stage.module.optim.lrr=1"], "'stage.module.optim.lrr'"),
    ("train", "wrong type, depth 3", ["stage.module.optim.lr=abc"], "'stage.module.optim.lr'"),
    ("train", "out of range, depth 3", ["stage.module.optim.lr=-1"], "'stage.module.optim.lr'"),
    ("train", "unknown key, depth 3 (model.tiny)", ["model.tiny.hidden_sizee=3"], "'model.tiny.hidden_sizee'"),
    ("train", "unknown key, depth 4 (data.sources.0)", ["data=jsonl", "data.sources.0.path=x.jsonl",
                                                        "+data.sources.0.adaptr=generic"], "'data.sources.0.adaptr'"),
    ("train", "wrong type, depth 4 (data.sources.0)", ["data=jsonl", "data.sources.0.path=x.jsonl",
                                                       "data.sources.0.limit=abc"], "'data.sources.0.limit'"),
    ("train", "unknown key, depth 4 (stage.module.rollout)", ["stage=ppo", "data=prompts_demo",
                                                              "+stage.module.rollout.max_new_tokenz=3"],
     "'stage.module.rollout.max_new_tokenz'"),
    ("train", "required value left ???", ["data=jsonl"], "'data.sources.0.path'"),
    ("train", "stage=ppo on the default (SFT) data", ["stage=ppo"], "'data'"),
    ("train", "stage=reward on SFT data", ["stage=reward", "data=alpaca"], "'data'"),
    ("train", "stage=dpo on prompt data", ["stage=dpo", "data=prompts_demo"], "'data'"),
    ("train", "stage=sft on preference pairs", ["stage=sft", "data=hh_rlhf_pairs"], "'data'"),
    ("train", "reward_fn=reward_model without a model", ["stage=ppo", "data=prompts_demo", "reward_fn=reward_model"],
     "'reward_fn.path'"),
    ("train", "verifiable reward on prompts without answers", ["stage=ppo", "data=prompts_demo",
                                                               "reward_fn=math_answer"], "metadata"),
    ("train", "checkpoint path that does not exist", ["ckpt_path=/nonexistent/last.ckpt"], "/nonexistent/last.ckpt"),
    ("train", "checkpoint of another model",
     lambda work, r: ["callbacks=default", f"ckpt_path={foreign_checkpoint(work)}"],
     "foreign.ckpt"),
    ("pipeline", "unknown top-level key", ["+sampel.k=3"], "'sampel'"),
    ("pipeline", "unknown key, depth 2", ["sample.kk=3"], "'sample.kk'"),
    ("pipeline", "wrong type, depth 2", ["sample.k=abc"], "'sample.k'"),
    ("pipeline", "unknown stage", ["stages=[sft,sampel]"], "'stages'"),
    ("pipeline", "unknown evaluate mode", ["stages=[evaluate]", "evaluate.mode=silver"], "'evaluate.mode'"),
    ("pipeline", "rounds below 1", ["rounds=0", "stages=[sample,annotate,dpo]"], "'rounds'"),
    ("pipeline", "unknown key in a stage's overrides, depth 4", ["stages=[sft]", "+sft.overrides.trainer.max_stpes=1"],
     "trainer.max_stpes"),
    ("pipeline", "unknown group option in a stage", ["stages=[sft]", "sft.groups.data=alpacca"], "data"),
    ("pipeline", "typo in a typed section of the last stage, depth 5",
     ["stages=[sft,sample,annotate,reward,ppo]", "+ppo.overrides.stage.module.kl.init_bta=0.1"],
     "'stage.module.kl.init_bta'"),
    ("pipeline", "unknown annotator", ["annotator=oracle"], "'annotator'"),
    ("model conversion", "unknown embedded model", ["--name", "smollm3-1b"], "'smollm3-1b'"),
    ("model conversion", "cache dir that is a file", lambda work, r: ["--cache-dir", str(a_file(work))],
     "not_a_folder"),
    ("score", "batch size 0", lambda work, r: ["--model", "unused", "--input",
                                            str(write_lines(work / "p.jsonl", PAIRS.good)),
                                            "--output", str(work / "s.jsonl"), "--batch-size", "0"], "--batch-size"),
    ("score", "output path that is a folder", lambda work, r: ["--model", str(r.reward_model), "--input",
                                                            str(write_lines(work / "p.jsonl", PAIRS.good)),
                                                            "--output", str(a_folder(work))], "out_folder"),
    ("evaluate stats", "bootstrap resamples below 0", lambda work, r: ["stats", "--judgments", str(
        write_lines(work / "j.jsonl", JUDGMENTS.good)), "--bootstrap", "-1"], "--bootstrap"),
]


def foreign_checkpoint(work: Path) -> Path:
    """A Lightning checkpoint of a 4-weight regression, not of the stage's module."""
    import torch

    path = work / "foreign.ckpt"
    torch.save({"state_dict": {"layer.weight": torch.zeros(1, 4), "layer.bias": torch.zeros(1)},
                "pytorch-lightning_version": "2.6.6", "epoch": 0, "global_step": 0, "loops": {},
                "callbacks": {}, "optimizer_states": [], "lr_schedulers": []}, path)
    return path


def a_folder(work: Path) -> Path:
    path = work / "out_folder"
    path.mkdir()
    return path


def a_file(work: Path) -> Path:
    path = work / "not_a_folder"
    path.write_text("a file where a folder should be\n")
    return path
