"""Optional bridge to EleutherAI lm-evaluation-harness for the ICE-GRT benchmark list
(docs/methods.md §5.1).

ICE-GRT ran GPT-Fathom, which is not available here, so these are the closest lm-eval (0.4.x) tasks
with the paper's shot counts; prompt formats are lm-eval's own, not GPT-Fathom's (docs/methods.md
§8.3.19), so compare RLHF-minus-SFT deltas, not absolute numbers. lm-eval is not a project
dependency: it is imported only when a benchmark is actually run.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from rlhf.core.errors import ConfigError, RLHFError
from rlhf.core.model_folder import check_model_folder

INSTALL_HINT = 'pip install "lm_eval[hf]"  (lm-evaluation-harness, with its Hugging Face backend)'


@dataclass(frozen=True)
class Benchmark:
    name: str          # as in ICE-GRT Table 1
    task: str | None   # lm-eval task or group; None when the harness has no equivalent
    num_fewshot: int | None  # None: the task's built-in few-shot prompt ("few" in Table 1)
    note: str = ""


ICE_GRT_BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("MMLU", "mmlu", 5),
    Benchmark("AGIEval", "agieval_en", None, "Table 1 says 'few'"),
    Benchmark("BBH", "bbh_fewshot", None, "the task's own 3-shot prompts"),
    Benchmark("AGIEval-ZH", "agieval_cn", None, "Table 1 says 'few'"),
    Benchmark("ARC-E", "arc_easy", 1),
    Benchmark("ARC-C", "arc_challenge", 1),
    Benchmark("HellaSwag", "hellaswag", 1),
    Benchmark("Winogrande", "winogrande", 1),
    Benchmark("RACE-M", None, 1, "lm-eval ships RACE-high only"),
    Benchmark("RACE-H", "race", 1),
    Benchmark("GSM8K", "gsm8k", 8),
    Benchmark("MATH", "minerva_math", 4),
)
# Tracked across PPO epochs in ICE-GRT §5.2.1 / §5.2.3 (Figs. 2b, 4); shot counts not given.
ICE_GRT_EXTRA_BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("NaturalQuestions", "nq_open", None),
    Benchmark("WebQuestions", "webqs", None),
    Benchmark("LAMBADA", "lambada_openai", None),
)


class LMEvalUnavailable(RLHFError, ImportError):
    """lm-evaluation-harness is not installed."""


def lm_eval_available() -> bool:
    return importlib.util.find_spec("lm_eval") is not None


def select_benchmarks(names: list[str] | None = None, include_extra: bool = False) -> list[Benchmark]:
    """Benchmarks by Table 1 name (all runnable ones when names is None)."""
    known = ICE_GRT_BENCHMARKS + (ICE_GRT_EXTRA_BENCHMARKS if include_extra else ())
    by_name = {b.name.lower(): b for b in ICE_GRT_BENCHMARKS + ICE_GRT_EXTRA_BENCHMARKS}
    if names is None:
        return [b for b in known if b.task is not None]
    unknown = [n for n in names if n.lower() not in by_name]
    if unknown:
        raise ConfigError("evaluate.benchmarks", f"unknown benchmarks {unknown}; known: {list(by_name)}")
    chosen = [by_name[n.lower()] for n in names]
    missing = [f"{b.name} ({b.note})" for b in chosen if b.task is None]
    if missing:
        raise ConfigError("evaluate.benchmarks", f"no lm-eval task for {missing}")
    return chosen


def run_benchmarks(model_path: str | Path, benchmarks: list[Benchmark] | None = None, device: str = "cpu",
                   batch_size: int = 8, limit: int | None = None, dtype: str = "float32") -> dict:
    """Run each benchmark with its shot count through lm_eval.simple_evaluate on an HF folder;
    returns {benchmark name: lm-eval's results dict for its task}."""
    check_model_folder(str(model_path))   # a wrong folder is named before the missing harness
    if not lm_eval_available():
        raise LMEvalUnavailable(f"lm-evaluation-harness is not installed; install it with: {INSTALL_HINT}")
    import lm_eval

    benchmarks = select_benchmarks() if benchmarks is None else benchmarks
    model_args = f"pretrained={model_path},dtype={dtype}"
    out = {}
    for benchmark in benchmarks:
        result = lm_eval.simple_evaluate(model="hf", model_args=model_args, tasks=[benchmark.task],
                                         num_fewshot=benchmark.num_fewshot, batch_size=batch_size,
                                         device=device, limit=limit)
        out[benchmark.name] = {"task": benchmark.task, "num_fewshot": benchmark.num_fewshot,
                               "results": result["results"]}
    return out
