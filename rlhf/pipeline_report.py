"""The pipeline's last stage: the trained policy (PPO's or DPO's export) vs SFT on held-out prompts, judged
by the gold annotator, with the training curves and, for PPO, the over-optimisation curve (gold and proxy
reward against sqrt(KL)).

Gold is the annotator's noise-free score (the simulated labeller in the demo); proxy is the reward
model PPO optimised. The win rate counts ties as half (docs/methods.md §5.4); the gold-reward gain is a paired
difference per prompt with a percentile-bootstrap 95% CI.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

import hydra
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from rlhf.data.jsonl import iter_jsonl, write_jsonl_atomic  # noqa: E402
from rlhf.data.source_spec import load_source  # noqa: E402
from rlhf.evaluate.generation import DecodingSettings, generate_file  # noqa: E402
from rlhf.evaluate.report import Section, Table, write_report  # noqa: E402
from rlhf.evaluate.stats import paired_gain, summarize_outcomes  # noqa: E402


KL_METRIC = "train/kl_objective"   # mean over rollouts of the summed per-token KL (what PPO logs)
TRAINING_FIGURES = {   # policy stage -> (metrics, file, title) of each training-curve figure
    "ppo": ((["train/reward_raw_mean", "train/reward_mean"], "reward.png", "PPO reward"),
            ([KL_METRIC, "train/kl_per_token", "train/beta"], "kl.png", "PPO KL"),
            (["train/value_loss", "train/explained_variance", "train/response_length"], "ppo_stats.png", "PPO internals")),
    "dpo": ((["train/loss", "train/rewards/margins", "train/rewards/accuracy"], "dpo_loss.png", "DPO loss and implicit reward"),
            (["train/kl/reference", "train/logps/chosen", "train/logps/rejected"], "dpo_logps.png", "DPO log-probs")),
}


def read_metrics(csv_root: Path) -> dict[str, list[tuple[int, float]]]:
    """Every logged metric of a CSVLogger run as (step, value) series (last version wins)."""
    files = sorted(csv_root.glob("*/metrics.csv")) if csv_root.exists() else []
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    if not files:
        return series
    with files[-1].open() as handle:
        for row in csv.DictReader(handle):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key != "step" and value not in ("", None):
                    series[key].append((step, float(value)))
    return series


def _line_plot(series: dict[str, list[tuple[int, float]]], keys: list[str], path: Path, title: str) -> Path | None:
    present = [k for k in keys if series.get(k)]
    if not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(4 * len(present), 3), squeeze=False)
    for ax, key in zip(axes[0], present):
        steps, values = zip(*series[key])
        ax.plot(steps, values)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def overoptimisation_points(samples: Path, metrics: dict, gold) -> list[dict]:
    """Per PPO step: sqrt of the mean sequence KL, proxy reward and gold reward of that step's rollouts."""
    by_step: dict[int, list[dict]] = defaultdict(list)
    for _, row in iter_jsonl(samples):
        by_step[int(row["step"])].append(row)
    kl = dict(metrics.get(KL_METRIC, []))
    points = []
    for step in sorted(by_step):
        rows = by_step[step]
        prompts = [[{"role": "user", "content": r["prompt"]}] for r in rows]
        gold_scores = gold.score(prompts, [r["response"] for r in rows])
        kl_value = kl.get(step, kl.get(step + 1))
        points.append({"step": step, "sqrt_kl": math.sqrt(max(kl_value, 0.0)) if kl_value is not None else None,
                       "proxy": sum(r["reward"] for r in rows) / len(rows), "gold": float(gold_scores.mean())})
    return points


def least_squares_slope(x: list[float], y: list[float]) -> float | None:
    """Ordinary least-squares slope of y on x; None with fewer than two distinct x."""
    n = len(x)
    if n < 2:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    if sxx == 0:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx


def overoptimisation_trend(points: list[dict]) -> dict | None:
    """Slopes of proxy and gold against sqrt(KL) over the PPO steps, and whether they diverge
    (proxy up while gold down: the reward model is being exploited)."""
    usable = [p for p in points if p["sqrt_kl"] is not None]
    x = [p["sqrt_kl"] for p in usable]
    proxy, gold = least_squares_slope(x, [p["proxy"] for p in usable]), least_squares_slope(x, [p["gold"] for p in usable])
    if proxy is None or gold is None:
        return None
    return {"proxy_slope": proxy, "gold_slope": gold, "diverging": proxy > 0 > gold, "max_sqrt_kl": max(x)}


def criteria_means(gold, prompts: list, outputs: dict) -> dict | None:
    """Mean of each gold criterion per policy, when the annotator exposes its criteria (simulated)."""
    if not hasattr(gold, "criteria_batch"):
        return None
    texts = [prompt[-1]["content"] for prompt in prompts]
    out = {}
    for name, rows in outputs.items():
        values = gold.criteria_batch(texts, [row["response"] for row in rows])
        out[name] = {key: sum(v[key] for v in values) / len(values) for key in values[0]}
    return out


def _overopt_plot(points: list[dict], path: Path) -> Path | None:
    usable = [p for p in points if p["sqrt_kl"] is not None]
    if not usable:
        return None
    fig, left = plt.subplots(figsize=(5, 3.5))
    x = [p["sqrt_kl"] for p in usable]
    left.plot(x, [p["proxy"] for p in usable], "o-", color="tab:blue", label="proxy (RM)")
    left.set_xlabel("sqrt(KL to reference)")
    left.set_ylabel("proxy reward", color="tab:blue")
    right = left.twinx()
    right.plot(x, [p["gold"] for p in usable], "s-", color="tab:red", label="gold")
    right.set_ylabel("gold reward", color="tab:red")
    fig.suptitle("Over-optimisation: proxy and gold vs sqrt(KL)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _gain_plot(gold_sft: list[float], gold_policy: list[float], path: Path, policy: str) -> Path:
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.scatter(gold_sft, gold_policy, s=12)
    low, high = min(gold_sft + gold_policy), max(gold_sft + gold_policy)
    ax.plot([low, high], [low, high], "k--", linewidth=1)
    ax.set_xlabel("gold reward, SFT")
    ax.set_ylabel(f"gold reward, {policy.upper()}")
    ax.set_title(f"Held-out prompts: {policy.upper()} vs SFT")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def headline_metrics(summary: dict) -> dict:
    """The scalars a sweep table compares across pipeline runs."""
    policy = summary.get("policy", "ppo")
    win, gain = summary[f"win_rate_{policy}_vs_sft"], summary[f"gold_gain_{policy}_minus_sft"]
    out = {f"eval/win_rate_{policy}_vs_sft": win["win_rate"], "eval/gold_gain": gain["mean_gain"],
           "eval/gold_gain_ci_low": gain["ci_bootstrap"][0], "eval/gold_gain_ci_high": gain["ci_bootstrap"][1]}
    out.update({f"eval/gold_{k}": v for k, v in summary["gold_mean"].items()})
    out.update({f"eval/proxy_{k}": v for k, v in (summary.get("proxy_mean") or {}).items()})
    return out


def evaluate_stage(cfg: DictConfig, sft_dir: Path, policy_dir: Path, policy_run_dir: Path, reward_dir: Path,
                   out_dir: Path, policy: str = "ppo") -> Path:
    """`policy` (the policy stage's name, PPO's or DPO's export in `policy_dir`, trained in `policy_run_dir`)
    against SFT; the proxy is the reward model in `reward_dir` when there is one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = cfg.evaluate
    records = load_source(OmegaConf.to_container(spec.prompts), kind="eval", seed=cfg.seed, key="evaluate.prompts")
    records = [{"id": r.get("id", str(i)), "dataset": r.get("source", "eval"), "prompt": r["prompt"]}
               for i, r in enumerate(records)]
    decoding = DecodingSettings(**OmegaConf.to_container(spec.decoding), seed=cfg.seed)
    outputs = {}
    for name, path in (("sft", sft_dir), (policy, policy_dir)):
        target = out_dir / f"generations_{name}.jsonl"
        if not target.exists():
            generate_file(target, records, str(path), decoding, model_name=name, batch_size=spec.batch_size)
        outputs[name] = [row for _, row in iter_jsonl(target)]
    gold = hydra.utils.instantiate(cfg.annotator)
    prompts = [r["prompt"] for r in records]
    scores = {name: gold.score(prompts, [row["response"] for row in rows]).tolist() for name, rows in outputs.items()}
    proxy = _proxy_scores(reward_dir, prompts, outputs)
    judgments = []
    for i, record in enumerate(records):
        a, b = scores[policy][i], scores["sft"][i]
        winner = "tie" if abs(a - b) < 1e-9 else ("a" if a > b else "b")
        judgments.append({"id": record["id"], "dataset": record["dataset"], "model_a": policy, "model_b": "sft",
                          "winner": winner, "gold_a": a, "gold_b": b,
                          "proxy_a": proxy[policy][i] if proxy else None, "proxy_b": proxy["sft"][i] if proxy else None})
    write_jsonl_atomic(out_dir / "judgments.jsonl", judgments)
    win = summarize_outcomes([j["winner"] for j in judgments], bootstrap_resamples=spec.bootstrap, seed=cfg.seed)
    gain = paired_gain(scores[policy], scores["sft"], spec.bootstrap, cfg.seed)
    metrics = read_metrics(policy_run_dir / "csv")
    samples = policy_run_dir / "samples.jsonl"   # PPO's rollouts; a DPO run has none
    points = overoptimisation_points(samples, metrics, gold) if samples.exists() else []
    summary = {"policy": policy, f"win_rate_{policy}_vs_sft": win, f"gold_gain_{policy}_minus_sft": gain,
               "gold_mean": {k: sum(v) / len(v) for k, v in scores.items()},
               "proxy_mean": {k: sum(v) / len(v) for k, v in proxy.items()} if proxy else None,
               "overoptimisation": points, "overoptimisation_trend": overoptimisation_trend(points),
               "gold_criteria_mean": criteria_means(gold, prompts, outputs)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    _write(cfg, out_dir, summary, metrics, scores, points, policy)
    return out_dir / "report.md"


def _proxy_scores(rm_dir: Path, prompts: list, outputs: dict) -> dict | None:
    if not rm_dir.exists():
        return None
    from rlhf.reward_model.scoring import load_reward_model

    scorer = load_reward_model(str(rm_dir))
    return {name: scorer.score(prompts, [row["response"] for row in rows]).tolist() for name, rows in outputs.items()}


def _write(cfg, out_dir: Path, summary: dict, metrics: dict, scores: dict, points: list, policy: str) -> None:
    win, gain = summary[f"win_rate_{policy}_vs_sft"], summary[f"gold_gain_{policy}_minus_sft"]
    verdict = "excludes" if gain["ci_bootstrap"][0] > 0 or gain["ci_bootstrap"][1] < 0 else "includes"
    label = policy.upper()
    text = (f"On {gain['n']} held-out prompts the {label} policy's gold reward exceeds the SFT policy's by "
            f"{gain['mean_gain']:+.4f} on average (95% bootstrap CI {gain['ci_bootstrap'][0]:+.4f} to "
            f"{gain['ci_bootstrap'][1]:+.4f}, which {verdict} zero). {label} wins {win['wins']}, loses "
            f"{win['losses']}, ties {win['ties']}: win rate {win['win_rate']:.3f} "
            f"(95% CI {win['ci_low']:.3f} to {win['ci_high']:.3f}).")
    table = Table.from_records("Gold and proxy reward", [
        {"policy": name, "gold mean": summary["gold_mean"][name],
         "proxy mean": (summary["proxy_mean"] or {}).get(name)} for name in scores])
    tables = [table]
    if summary.get("gold_criteria_mean"):
        tables.append(Table.from_records("Gold criteria (mean per policy)", [
            {"policy": name, **values} for name, values in summary["gold_criteria_mean"].items()]))
    figures = []
    for keys, name, title in TRAINING_FIGURES.get(policy, ()):
        png = _line_plot(metrics, keys, out_dir / name, title)
        if png:
            figures.append((title, png))
    figures.append(("Gold reward per held-out prompt", _gain_plot(scores["sft"], scores[policy], out_dir / "gain.png", policy)))
    overopt = _overopt_plot(points, out_dir / "overoptimisation.png")
    sections = [Section(f"{label} vs SFT on held-out prompts", text, tables, figures)]
    if overopt:
        trend = summary.get("overoptimisation_trend")
        about = "Gold and proxy reward of each PPO step's rollouts against sqrt(KL) to the reference."
        if trend:
            about += (f" Least-squares slopes up to sqrt(KL) = {trend['max_sqrt_kl']:.2f}: proxy "
                      f"{trend['proxy_slope']:+.4f}, gold {trend['gold_slope']:+.4f} per unit sqrt(KL)"
                      + (" — the proxy rises while gold falls: the reward model is being over-optimised."
                         if trend["diverging"] else "."))
        sections.append(Section("Over-optimisation", about,
                                [Table.from_records("Per step", points)], [("proxy and gold vs sqrt(KL)", overopt)]))
    write_report(out_dir, sections, title=f"RLHF pipeline report: {cfg.task_name}")
