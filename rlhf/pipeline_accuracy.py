"""The pipeline's evaluate stage on a verifiable task (`evaluate.mode: accuracy`, experiment=rlvr): SFT and the
trained policy answer the same held-out prompts, carrying their metadata, and the reward grades them through
rlhf.evaluate.accuracy, so the metric is the very reward the RL stage optimised (docs/rewards.md).

Per policy: one greedy response per prompt gives the exact accuracy (95% CI over prompts), k sampled ones give
mean@k and the unbiased pass@1 / pass@k (Chen et al. 2021). The gain is paired over the same prompts,

    d_i = correct_policy(i) - correct_sft(i)  in {-1, 0, 1},   gain = mean_i d_i,

with a normal and a percentile-bootstrap 95% CI (rlhf.evaluate.stats.paired_gain), overall and per subset
(`level` of the arithmetic task).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rlhf.core.errors import ConfigError, DataError
from rlhf.core.schema import NON_NEGATIVE, POSITIVE, UNIT, as_config, section, setting
from rlhf.data.config import SourceConfig
from rlhf.data.source_spec import load_source
from rlhf.evaluate.accuracy import accuracy_summary, load_samples, reward_node, score_samples, subset_fields
from rlhf.evaluate.generation import DecodingSettings, generate_file
from rlhf.evaluate.report import Section, Table, write_report
from rlhf.evaluate.stats import paired_gain
from rlhf.rewards.build import build_reward

EVALUATE_MODES = ("gold", "accuracy")


@dataclass
class AccuracyEvalConfig:
    """`evaluate` of the pipeline with mode accuracy (configs/experiment/rlvr.yaml)."""

    mode: str = setting("accuracy", choices=EVALUATE_MODES)
    """gold = the annotator judges policy vs SFT (rlhf/pipeline_report.py); accuracy = this module."""
    reward: Any = "math_answer"
    """What grades a response: a configs/reward_fn name, a yaml path, or a reward node (rlhf.rewards.build)."""
    prompts: Any = section(SourceConfig)
    """Held-out prompts with the metadata the reward reads, e.g. {builtin: arithmetic, split: test, n: 96}."""
    k: int = setting(4, **POSITIVE)
    """Sampled responses per prompt for mean@k and pass@k (pass@1 and pass@k are reported)."""
    decoding: DecodingSettings = field(default_factory=DecodingSettings)
    """The greedy responses of the exact accuracy (do_sample false)."""
    sampling: DecodingSettings = field(default_factory=lambda: DecodingSettings(do_sample=True))
    """The k sampled responses per prompt."""
    batch_size: int = setting(64, **POSITIVE)
    bootstrap: int = setting(2000, **NON_NEGATIVE)
    """Percentile-bootstrap resamples of the paired gain."""
    part: str | None = None
    """The reward part that decides correctness; None = the first."""
    threshold: float = setting(0.5, **UNIT)
    """A response is correct when that part scores at least this (a 0/1 reward's 1)."""
    frontier: bool = False
    """Also score the policy's training snapshots: accuracy and KL to SFT per checkpoint (rlhf/pipeline_frontier.py)."""


def accuracy_config(cfg: DictConfig) -> AccuracyEvalConfig:
    """The pipeline's `evaluate` section, resolved and checked (an unknown key or a bad value names its path)."""
    return as_config(AccuracyEvalConfig, OmegaConf.to_container(cfg.evaluate, resolve=True), "evaluate")


def reward_spec(value, key: str = "evaluate.reward"):
    """A reward config node from a name or path (rlhf.evaluate.accuracy.reward_node) or a node."""
    if isinstance(value, str):
        return reward_node(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise ConfigError(key, f"expects a configs/reward_fn name, a yaml path or a reward node, got {value!r}")


def held_out_records(spec: AccuracyEvalConfig, seed: int) -> list[dict]:
    """{id, dataset, prompt, metadata} per held-out prompt; metadata always holds the id."""
    records = load_source(spec.prompts, kind="prompt", seed=seed, key="evaluate.prompts")
    if not records:
        raise ConfigError("evaluate.prompts", "the prompt source gave no prompts")
    out = []
    for i, r in enumerate(records):
        pid = str(r.get("id", i))
        out.append({"id": pid, "dataset": r.get("source", "eval"), "prompt": r["prompt"],
                    "metadata": {**(r.get("metadata") or {}), "id": pid}})
    return out


def generations(out_dir: Path, name: str, model_dir: Path, records: list[dict], spec: AccuracyEvalConfig,
                seed: int) -> tuple[Path, Path]:
    """generations_<name>.jsonl (greedy, one per prompt) and samples_<name>.jsonl (k per prompt, rows of one
    prompt together); a file that exists is kept (a resumed evaluate regenerates nothing)."""
    greedy, sampled = out_dir / f"generations_{name}.jsonl", out_dir / f"samples_{name}.jsonl"
    if not greedy.exists():
        generate_file(greedy, records, str(model_dir), dataclasses.replace(spec.decoding, seed=seed),
                      model_name=name, batch_size=spec.batch_size)
    if not sampled.exists():
        repeated = [r for r in records for _ in range(spec.k)]
        generate_file(sampled, repeated, str(model_dir), dataclasses.replace(spec.sampling, seed=seed),
                      model_name=name, batch_size=spec.batch_size)
    return greedy, sampled


def correct_by_prompt(scored: list[dict]) -> dict[str, float]:
    """Prompt id -> mean correctness of its samples (0/1 with one greedy sample)."""
    flags: dict[str, list[bool]] = {}
    for row in scored:
        flags.setdefault(row["id"], []).append(bool(row["correct"]))
    return {pid: sum(f) / len(f) for pid, f in flags.items()}


def paired_accuracy_gain(policy: list[dict], sft: list[dict], resamples: int, seed: int) -> dict:
    """paired_gain of per-prompt correctness, policy - SFT, over the prompts both answered; per subset too."""
    a, b = correct_by_prompt(policy), correct_by_prompt(sft)
    if set(a) != set(b):
        raise DataError(f"SFT and the policy answered different prompts ({len(b)} and {len(a)}); "
                        "delete the evaluate folder's generation files and rerun")
    ids = list(b)
    gain = paired_gain([a[i] for i in ids], [b[i] for i in ids], resamples, seed)
    metadata = {row["id"]: row["metadata"] for row in sft}
    gain["subsets"] = {}
    for field_name in subset_fields(sft):
        values = sorted({str(m.get(field_name)) for m in metadata.values()})
        gain["subsets"][field_name] = {
            v: paired_gain([a[i] for i in ids if str(metadata[i].get(field_name)) == v],
                           [b[i] for i in ids if str(metadata[i].get(field_name)) == v], resamples, seed)
            for v in values}
    return gain


def accuracy_report(scored: dict[str, dict[str, list[dict]]], policy: str, k: int, resamples: int,
                    seed: int) -> dict:
    """The summary of `scored` = {"greedy" | "sampled": {"sft" | policy: scored samples}} (score_samples)."""
    ks = sorted({1, k})
    summary = {"mode": "accuracy", "policy": policy, "k": k,
               "accuracy": {n: accuracy_summary(rows, (1,), bootstrap=resamples, seed=seed)
                            for n, rows in scored["greedy"].items()},
               "sampled": {n: accuracy_summary(rows, ks, seed=seed) for n, rows in scored["sampled"].items()}}
    summary["n_prompts"] = summary["accuracy"]["sft"]["all"]["n_prompts"]
    summary[f"accuracy_gain_{policy}_minus_sft"] = paired_accuracy_gain(
        scored["greedy"][policy], scored["greedy"]["sft"], resamples, seed)
    summary[f"mean_at_k_gain_{policy}_minus_sft"] = paired_accuracy_gain(
        scored["sampled"][policy], scored["sampled"]["sft"], resamples, seed)
    return summary


def accuracy_headline_metrics(summary: dict) -> dict:
    """The scalars a sweep table compares (the accuracy counterpart of pipeline_report.headline_metrics)."""
    policy, k = summary["policy"], summary["k"]
    gain = summary[f"accuracy_gain_{policy}_minus_sft"]
    out = {"eval/accuracy_gain": gain["mean_gain"], "eval/accuracy_gain_ci_low": gain["ci_bootstrap"][0],
           "eval/accuracy_gain_ci_high": gain["ci_bootstrap"][1]}
    for name, label in (("sft", "sft"), (policy, "policy")):
        greedy, sampled = summary["accuracy"][name]["all"], summary["sampled"][name]["all"]
        out.update({f"eval/accuracy_{label}": greedy["accuracy"], f"eval/accuracy_{label}_ci_low": greedy["ci95"][0],
                    f"eval/accuracy_{label}_ci_high": greedy["ci95"][1],
                    f"eval/pass@{k}_{label}": sampled[f"pass@{k}"], f"eval/mean@{k}_{label}": sampled[f"mean@{k}"]})
    return out


def accuracy_stage(cfg: DictConfig, sft_dir: Path, policy_dir: Path, out_dir: Path, policy: str = "ppo") -> Path:
    """Generate, grade and report SFT and `policy` (its export in `policy_dir`) on the held-out prompts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = accuracy_config(cfg)
    reward = build_reward(reward_spec(spec.reward), key="evaluate.reward")
    records = held_out_records(spec, cfg.seed)
    scored: dict[str, dict[str, list[dict]]] = {"greedy": {}, "sampled": {}}
    for name, model_dir in (("sft", sft_dir), (policy, policy_dir)):
        for kind, path in zip(("greedy", "sampled"), generations(out_dir, name, model_dir, records, spec, cfg.seed)):
            scored[kind][name] = score_samples(load_samples(path), reward, spec.part, spec.threshold)
    summary = accuracy_report(scored, policy, spec.k, spec.bootstrap, cfg.seed)
    summary.update(reward=spec.reward if isinstance(spec.reward, str) else "node", part=spec.part or reward.names[0],
                   threshold=spec.threshold, algorithm=((cfg.get(policy) or {}).get("groups") or {}).get("algorithm"))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    write_report(out_dir, report_sections(summary), title=f"RLHF pipeline report: {cfg.task_name}")
    return out_dir / "report.md"


def _ci(values) -> str:
    return f"[{values[0]:+.3f}, {values[1]:+.3f}]"


def report_sections(summary: dict) -> list[Section]:
    """The report's text, the accuracy table of both policies and one paired table per subset field."""
    policy, k = summary["policy"], summary["k"]
    label = policy.upper() + (f" ({summary['algorithm']})" if summary.get("algorithm") else "")
    gain = summary[f"accuracy_gain_{policy}_minus_sft"]
    acc = {n: summary["accuracy"][n]["all"] for n in ("sft", policy)}
    verdict = "excludes" if gain["ci_bootstrap"][0] > 0 or gain["ci_bootstrap"][1] < 0 else "includes"
    text = (f"On {summary['n_prompts']} held-out prompts graded by `{summary['reward']}` (part `{summary['part']}`, "
            f"correct at >= {summary['threshold']}), greedy exact accuracy is {acc['sft']['accuracy']:.3f} "
            f"(95% CI {acc['sft']['ci95'][0]:.3f} to {acc['sft']['ci95'][1]:.3f}) for SFT and "
            f"{acc[policy]['accuracy']:.3f} (95% CI {acc[policy]['ci95'][0]:.3f} to {acc[policy]['ci95'][1]:.3f}) "
            f"for {label}: a paired gain of {gain['mean_gain']:+.3f} (95% bootstrap CI {gain['ci_bootstrap'][0]:+.3f} "
            f"to {gain['ci_bootstrap'][1]:+.3f}, which {verdict} zero). pass@k and mean@k come from {k} sampled "
            "responses per prompt.")
    rows = []
    for name in ("sft", policy):
        greedy, sampled = summary["accuracy"][name]["all"], summary["sampled"][name]["all"]
        rows.append({"policy": name, "accuracy (greedy)": greedy["accuracy"], "95% CI": _ci(greedy["ci95"]),
                     "unparsed (greedy)": greedy.get("unparsed", ""), "pass@1": sampled["pass@1"],
                     f"pass@{k}": sampled[f"pass@{k}"], f"mean@{k}": sampled[f"mean@{k}"]})
    tables = [Table.from_records("Held-out accuracy", rows),
              Table.from_records("Paired gain, policy - SFT", [
                  {"responses": "greedy", "gain": gain["mean_gain"], "95% bootstrap CI": _ci(gain["ci_bootstrap"]),
                   "95% normal CI": _ci(gain["ci_normal"])},
                  {"responses": f"{k} sampled (mean@{k})",
                   "gain": summary[f"mean_at_k_gain_{policy}_minus_sft"]["mean_gain"],
                   "95% bootstrap CI": _ci(summary[f"mean_at_k_gain_{policy}_minus_sft"]["ci_bootstrap"]),
                   "95% normal CI": _ci(summary[f"mean_at_k_gain_{policy}_minus_sft"]["ci_normal"])}])]
    for field_name, per_value in gain["subsets"].items():
        tables.append(Table.from_records(f"Per {field_name}", [
            {field_name: value, "prompts": g["n"],
             "SFT": summary["accuracy"]["sft"]["subsets"][field_name][value]["accuracy"],
             label: summary["accuracy"][policy]["subsets"][field_name][value]["accuracy"],
             "gain": g["mean_gain"], "95% bootstrap CI": _ci(g["ci_bootstrap"]),
             f"pass@{k} SFT": summary["sampled"]["sft"]["subsets"][field_name][value].get(f"pass@{k}", ""),
             f"pass@{k} {label}": summary["sampled"][policy]["subsets"][field_name][value].get(f"pass@{k}", "")}
            for value, g in per_value.items()]))
    return [Section(f"{label} vs SFT: held-out accuracy", text, tables)]
