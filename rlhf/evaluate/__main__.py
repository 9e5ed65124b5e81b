"""`python -m rlhf.evaluate {generate,judge,stats,report,agreement,gsm8k,accuracy,benchmarks} ...`
(docs/methods.md §5).

generate    answer prompt sets with one checkpoint              -> generations JSONL
judge       compare two generations files (LLM / RM / simulated) -> judgments JSONL
stats       win rate, SE, normal (+ bootstrap) CI per model pair and dataset -> JSON on stdout
report      Markdown + HTML report with tables and plots from judgments
agreement   agreement of one judgments file (e.g. a reward model's) with a reference judge's
gsm8k       exact-match accuracy of a GSM8K generations file     -> JSON on stdout
accuracy    accuracy under a reward (math_answer, ...) with a 95% CI, per subset, mean@k, pass@k
benchmarks  ICE-GRT benchmark list through lm-evaluation-harness (when installed)
Bad input stops with one line naming the file, record and what was expected (exit status 2).
Files are read line by line and written as they are made, to a staged file published in one rename
at the end, so memory does not grow with the files' length (bench/stream_rss.py) and a stopped command
leaves no half file.
"""

from __future__ import annotations

import argparse
import json

from rlhf.core.errors import ConfigError, RLHFError, exit_on_error


def _generate(args) -> None:
    from rlhf.evaluate.generation import DecodingSettings, generate_file
    from rlhf.evaluate.prompt_sets import iter_jsonl_prompts, load_prompt_set

    named = []
    for name in args.prompt_set or []:
        options = {"both_turns": True} if name == "mt_bench" and args.mt_bench_both_turns else {}
        named += load_prompt_set(name, args.data_dir, args.limit, **options)
    metadata_fields = _pairs(args.metadata_field, "--metadata-field")

    def records():
        """The named sets (small), then each prompts file read line by line (files can be long)."""
        yield from named
        for path in args.prompts_file or []:
            yield from iter_jsonl_prompts(path, args.dataset or "custom", args.prompt_field, args.id_field,
                                          metadata_fields=metadata_fields, limit=args.limit)

    total = sum(1 for _ in records())   # every prompt checked before the model loads
    if not total:
        raise RLHFError("nothing to generate: give --prompt-set NAME and/or --prompts-file FILE")
    decoding = DecodingSettings(max_new_tokens=args.max_new_tokens, do_sample=args.do_sample,
                                temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                                template=args.template, max_prompt_tokens=args.max_prompt_tokens)
    path = generate_file(args.out, records(), args.model, decoding, args.name, args.tokenizer, args.dtype,
                         args.device, args.batch_size)
    print(json.dumps({"out": str(path), "rows": total}))


def _pairs(items: list[str] | None, flag: str) -> dict[str, str] | None:
    """KEY=FIELD items as {KEY: FIELD}; a bare KEY maps to itself."""
    if not items:
        return None
    out = {}
    for item in items:
        key, _, field = item.partition("=")
        if not key:
            raise RLHFError(f"{flag} expects KEY=FIELD (e.g. answer=answer), got {item!r}")
        out[key] = field or key
    return out


def _judge(args) -> None:
    from rlhf.evaluate.judges import build_judge
    from rlhf.evaluate.judgments import judge_files

    llm_options = {}
    if args.judge == "llm":
        llm_options = {"swap_positions": args.positions == "both", "random_order": args.positions == "random",
                       "api_key_env": args.api_key_env, "max_retries": args.max_retries}
        if args.judge_prompt:
            from rlhf.annotators.llm_judge import load_fastchat_judge_prompt
            from rlhf.evaluate.prompt_sets import default_data_dir

            prompt_file = args.judge_prompt_file or default_data_dir() / "eval" / "llm_judge_prompts.jsonl.gz"
            llm_options["prompt_template"] = load_fastchat_judge_prompt(args.judge_prompt, prompt_file)
    judge = build_judge(args.judge, base_url=args.base_url, judge_model=args.judge_model,
                        reward_model=args.reward_model, reward_output=args.reward_output, device=args.device,
                        tie_margin=args.tie_margin, seed=args.seed, **llm_options)
    path = judge_files(args.a, args.b, judge, args.out, args.model_a, args.model_b, args.batch_size)
    print(json.dumps({"out": str(path), "judge": judge.name}))


def _load_judgments(paths: list[str]):
    """The rows of the judgments files, read line by line as the command consumes them."""
    from rlhf.evaluate.judgments import iter_judgments

    return iter_judgments(paths)


def _check_stats_options(args) -> None:
    """Before any file is read: the resample count and ddof a win rate's CI needs."""
    if args.bootstrap < 0:
        raise ConfigError("--bootstrap", f"must be an integer >= 0 (0: no bootstrap CI), got {args.bootstrap}")
    if args.ddof < 0:
        raise ConfigError("--ddof", f"must be 0 or 1, got {args.ddof}")


def _stats(args) -> None:
    from rlhf.evaluate.stats import summarize_judgments

    _check_stats_options(args)
    summary = summarize_judgments(_load_judgments(args.judgments), args.ties, args.ddof, args.z,
                                  args.bootstrap, args.seed)
    print(json.dumps(summary, indent=2))


def _report(args) -> None:
    from rlhf.evaluate.report import report_from_judgments

    _check_stats_options(args)
    paths = report_from_judgments(_load_judgments(args.judgments), args.out, args.ties, args.ddof,
                                  args.bootstrap, args.seed, title=args.title)
    print(json.dumps({k: str(v) for k, v in paths.items()}))


def _agreement(args) -> None:
    from rlhf.evaluate.agreement import judgment_agreement

    out = judgment_agreement(_load_judgments(args.predicted), _load_judgments(args.reference), args.reference_ties)
    print(json.dumps(out, indent=2))


def _gsm8k(args) -> None:
    from rlhf.evaluate.gsm8k import gsm8k_accuracy
    from rlhf.evaluate.judgments import iter_generations

    counts = {"rows": 0, "missing": 0, "first": None}

    def graded_rows():
        for row in iter_generations(args.generations):
            if row["dataset"] != "gsm8k":
                continue
            counts["rows"] += 1
            if "reference" not in row:
                counts["missing"] += 1
                counts["first"] = counts["first"] or row["id"]
            elif not counts["missing"]:
                yield row

    result = gsm8k_accuracy(graded_rows())
    if not counts["rows"] or counts["missing"]:
        first = f" (the first: id {counts['first']!r})" if counts["first"] is not None else ""
        raise RLHFError(f"{args.generations}: need gsm8k rows with a 'reference' gold number, found {counts['rows']} "
                        f"gsm8k rows, {counts['missing']} without one{first}; generate with --prompt-set gsm8k")
    print(json.dumps(result, indent=2))


def _accuracy(args) -> None:
    from rlhf.evaluate.accuracy import accuracy_of_file, markdown_tables

    ks = sorted(set(args.k or [1]))
    summary = accuracy_of_file(args.generations, args.reward, ks, args.by, args.part, args.threshold,
                               scored_path=args.scored, ddof=args.ddof, bootstrap=args.bootstrap, seed=args.seed)
    print(markdown_tables(summary, ks) if args.format == "markdown" else json.dumps(summary, indent=2))


def _benchmarks(args) -> None:
    from rlhf.evaluate.lm_eval_bridge import run_benchmarks, select_benchmarks

    chosen = select_benchmarks(args.names, include_extra=args.extra)
    print(json.dumps(run_benchmarks(args.model, chosen, args.device, args.batch_size, args.limit), indent=2,
                     default=str))


def _add_stats_options(parser) -> None:
    parser.add_argument("--judgments", nargs="+", required=True, help="judgments JSONL file(s)")
    parser.add_argument("--ties", choices=("half", "exclude"), default="half",
                        help="ties count half a win (AlpacaEval, docs/methods.md §5.3) or leave n")
    parser.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples for a percentile CI (0: off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ddof", type=int, default=0,
                        help="1 reproduces thesis Table 23 (docs/methods.md §5.4)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rlhf.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="answer prompt sets with one checkpoint")
    gen.add_argument("--model", required=True, help="HF folder, hub id, embedded:<name> or 'tiny'")
    gen.add_argument("--tokenizer", help="defaults to --model (embedded:smollm2-135m for tiny)")
    gen.add_argument("--name", help="model name written into each row (default: --model)")
    gen.add_argument("--prompt-set", action="append", help="named set: mt_bench, vicuna, koala, user_oriented, "
                     "gsm8k, oasst_en_100, oasst_lottery_250 (repeatable)")
    gen.add_argument("--prompts-file", action="append", help="any JSONL of prompts (repeatable)")
    gen.add_argument("--dataset", help="dataset name for --prompts-file rows")
    gen.add_argument("--prompt-field", default="prompt")
    gen.add_argument("--id-field", default="id")
    gen.add_argument("--metadata-field", action="append", metavar="KEY=FIELD",
                     help="copy field FIELD of each --prompts-file record into the row's metadata as KEY, e.g. "
                     "answer=answer, level=level (repeatable); graded by `accuracy`")
    gen.add_argument("--mt-bench-both-turns", action="store_true", help="also answer MT-bench's second turn")
    gen.add_argument("--data-dir", help="shared data folder (default: RLHF_DATA_DIR or ../shared/data)")
    gen.add_argument("--limit", type=int, help="first N prompts of each set")
    gen.add_argument("--out", required=True)
    gen.add_argument("--max-new-tokens", type=int, default=256)
    gen.add_argument("--do-sample", action="store_true")
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--template", default="chatml", help="chatml (thesis) or ice_grt")
    gen.add_argument("--max-prompt-tokens", type=int, default=1024)
    gen.add_argument("--batch-size", type=int, default=8)
    gen.add_argument("--dtype", default="float32")
    gen.add_argument("--device", default="cpu")
    gen.set_defaults(run=_generate)

    judge = sub.add_parser("judge", help="pairwise judgments of two generations files")
    judge.add_argument("--a", required=True, help="generations JSONL of model A")
    judge.add_argument("--b", required=True, help="generations JSONL of model B")
    judge.add_argument("--out", required=True)
    judge.add_argument("--judge", choices=("llm", "reward_model", "simulated"), required=True)
    judge.add_argument("--model-a")
    judge.add_argument("--model-b")
    judge.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    judge.add_argument("--judge-model", help="model name served at --base-url")
    judge.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    judge.add_argument("--positions", choices=("both", "random", "fixed"), default="both",
                       help="both orders, a win only when they agree (default); one seeded random order per "
                       "prompt (the thesis's AlpacaEval setup, docs/methods.md §5.3); or always A first")
    judge.add_argument("--max-retries", type=int, default=3)
    judge.add_argument("--judge-prompt", help="FastChat judge prompt name, e.g. pair-v2")
    judge.add_argument("--judge-prompt-file", help="default: <data dir>/eval/llm_judge_prompts.jsonl.gz")
    judge.add_argument("--reward-model", help="saved reward-model folder")
    judge.add_argument("--reward-output", choices=("logit", "prob"), default="logit")
    judge.add_argument("--tie-margin", type=float, default=0.0, help="score gap at or below which it is a tie")
    judge.add_argument("--batch-size", type=int, default=16)
    judge.add_argument("--device", default="cpu")
    judge.add_argument("--seed", type=int, default=0)
    judge.set_defaults(run=_judge)

    stats = sub.add_parser("stats", help="win rates with SE and CIs as JSON")
    _add_stats_options(stats)
    stats.add_argument("--z", type=float, default=1.96)
    stats.set_defaults(run=_stats)

    report = sub.add_parser("report", help="Markdown + HTML report from judgments")
    _add_stats_options(report)
    report.add_argument("--out", required=True, help="report folder")
    report.add_argument("--title", default="Evaluation report")
    report.set_defaults(run=_report)

    agree = sub.add_parser("agreement", help="share of prompts where one judge (e.g. an RM) agrees with another")
    agree.add_argument("--predicted", nargs="+", required=True, help="judgments of the judge under test (e.g. RM)")
    agree.add_argument("--reference", nargs="+", required=True, help="reference judgments (LLM judge or humans)")
    agree.add_argument("--reference-ties", choices=("exclude", "count"), default="exclude")
    agree.set_defaults(run=_agreement)

    gsm = sub.add_parser("gsm8k", help="GSM8K exact-match accuracy of a generations file")
    gsm.add_argument("--generations", required=True)
    gsm.set_defaults(run=_gsm8k)

    acc = sub.add_parser("accuracy", help="accuracy of generations under a verifiable reward, with CI and pass@k")
    acc.add_argument("--generations", required=True, help="generations JSONL (one response per row, k rows per id "
                     "for k samples) or a samples file (`responses` lists); rows carry `metadata`")
    acc.add_argument("--reward", required=True, help="a configs/reward_fn name (math_answer, numeric_match, "
                     "exact_match, ...) or a reward yaml file")
    acc.add_argument("--k", type=int, action="append", help="report mean@k and pass@k (repeatable; default 1)")
    acc.add_argument("--by", action="append", help="metadata field for a per-subset table (repeatable; default: "
                     "subset, level, category when they vary)")
    acc.add_argument("--part", help="the reward part that decides correctness (default: the first)")
    acc.add_argument("--threshold", type=float, default=0.5, help="correct when that part's score >= this")
    acc.add_argument("--ddof", type=int, default=0)
    acc.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples over prompts (0: off)")
    acc.add_argument("--seed", type=int, default=0)
    acc.add_argument("--format", choices=("json", "markdown"), default="json")
    acc.add_argument("--scored", help="also write each sample with its score and details to this JSONL")
    acc.set_defaults(run=_accuracy)

    bench = sub.add_parser("benchmarks", help="ICE-GRT benchmarks via lm-evaluation-harness")
    bench.add_argument("--model", required=True, help="HF model folder")
    bench.add_argument("--names", nargs="*", help="Table 1 names, e.g. MMLU GSM8K (default: all runnable)")
    bench.add_argument("--extra", action="store_true", help="add NQ, WebQuestions, LAMBADA")
    bench.add_argument("--limit", type=int, help="examples per task (smoke runs only)")
    bench.add_argument("--batch-size", type=int, default=8)
    bench.add_argument("--device", default="cpu")
    bench.set_defaults(run=_benchmarks)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.run(args)



def cli() -> None:
    """`python -m rlhf.evaluate` and the `rlhf-evaluate` script: bad input exits 2
    with one line (main itself raises, for callers)."""
    exit_on_error(main)()


if __name__ == "__main__":
    cli()
