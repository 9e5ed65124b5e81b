"""The comparison report over the finished arms of a sweep dir (docs/algorithms.md §5): report.md, report.html,
compare.csv (one row per arm and seed), pairs.csv (paired differences) and frontier.csv in the sweep dir.

Each job dir holds what its pipeline wrote: frontier/frontier.json (per-checkpoint score and KL, per-prompt scores of
SFT and the final policy), evaluate/summary.json (win rate against SFT) and stage_times.json. Seeds stay separate
rows and separate lines: their spread is the point, so nothing is averaged over seeds.

    python -m rlhf.compare runs/compare/demo      # also run by experiment=compare when its last arm ends
"""

from __future__ import annotations

import csv
import json
from itertools import combinations
from pathlib import Path

import yaml

from rlhf.compare.figures import plot_final, plot_frontier, plot_proxy_gold
from rlhf.evaluate.report import Section, Table, write_report
from rlhf.evaluate.stats import bootstrap_ci, paired_gain

BOOTSTRAP = 2000


def job_identity(job_dir: Path) -> tuple[str, int]:
    """(arm, seed) of a job dir, from its Hydra overrides, else its resolved config."""
    overrides = job_dir / ".hydra" / "overrides.yaml"
    found = {}
    if overrides.exists():
        found = dict(o.partition("=")[::2] for o in yaml.safe_load(overrides.read_text()) or [])
    resolved = job_dir / "config_resolved.yaml"
    config = yaml.safe_load(resolved.read_text()) if resolved.exists() else {}
    return found.get("arm") or config.get("task_name") or job_dir.name, int(found.get("seed", config.get("seed", 0)))


def stage_costs(job_dir: Path) -> dict:
    """Wall seconds and peak RSS of the arm's own stages, and the seconds of the shared stages this job ran."""
    path = job_dir / "stage_times.json"
    times = json.loads(path.read_text()) if path.exists() else {}
    own = {k: v for k, v in times.items() if not v.get("shared")}
    return {"seconds": sum(v["seconds"] for v in own.values()) if own else None,
            "peak_rss_gb": max(v["peak_rss_bytes"] for v in own.values()) / 1e9 if own else None,
            "shared": {k: v["seconds"] for k, v in times.items() if v.get("shared")}}


def arm_result(job_dir: Path) -> dict | None:
    """One arm and seed's numbers; None when the job has not finished its frontier stage."""
    frontier_file = job_dir / "frontier" / "frontier.json"
    if not frontier_file.exists():
        return None
    frontier = json.loads(frontier_file.read_text())
    arm, seed = job_identity(job_dir)
    final, sft = frontier["final_scores"], frontier["sft_scores"]
    ids = sorted(set(final) & set(sft))
    score = [final[i] for i in ids]
    low, high = bootstrap_ci(score, BOOTSTRAP, seed=0)
    gain = paired_gain(score, [sft[i] for i in ids], BOOTSTRAP, 0)
    win = {}
    summary_file = job_dir / "evaluate" / "summary.json"
    if frontier["mode"] == "gold" and summary_file.exists():
        win = json.loads(summary_file.read_text())[f"win_rate_{frontier['policy']}_vs_sft"]
    kl = list(frontier["final_kl"].values())
    return {"arm": arm, "seed": seed, "metric": frontier["metric"], "n_prompts": len(ids),
            "score": sum(score) / len(score), "score_ci": [low, high], "sft_score": sum(sft[i] for i in ids) / len(ids),
            "gain": gain["mean_gain"], "gain_ci": gain["ci_bootstrap"],
            "win_rate": win.get("win_rate"), "win_ci": [win.get("ci_low"), win.get("ci_high")],
            "kl": sum(kl) / len(kl) if kl else None, "proxy": frontier["points"][-1].get("proxy"),
            "samples": frontier["training"]["samples"], "tokens": frontier["training"]["tokens"],
            **stage_costs(job_dir), "points": frontier["points"], "per_prompt": final}


def collect(sweep_dir: Path) -> list[dict]:
    results = [arm_result(d) for d in sorted(p for p in Path(sweep_dir).iterdir() if p.is_dir())]
    return sorted((r for r in results if r), key=lambda r: (r["seed"], r["arm"]))


def paired_differences(results: list[dict]) -> list[dict]:
    """Within each seed, every pair of arms: mean over the shared prompts of score_a - score_b, with its CI."""
    rows = []
    for a, b in combinations(results, 2):
        if a["seed"] != b["seed"]:
            continue
        ids = sorted(set(a["per_prompt"]) & set(b["per_prompt"]))
        gain = paired_gain([a["per_prompt"][i] for i in ids], [b["per_prompt"][i] for i in ids], BOOTSTRAP, 0)
        low, high = gain["ci_bootstrap"]
        rows.append({"seed": a["seed"], "arm_a": a["arm"], "arm_b": b["arm"], "prompts": gain["n"],
                     "difference": gain["mean_gain"], "ci_low": low, "ci_high": high,
                     "verdict": f"{a['arm'] if low > 0 else b['arm']} ahead" if low > 0 or high < 0 else "not resolved"})
    return rows


def _ci(pair) -> str:
    return "–" if pair[0] is None else f"[{pair[0]:+.3f}, {pair[1]:+.3f}]"


def arm_rows(results: list[dict]) -> list[dict]:
    metric = results[0]["metric"]
    return [{"arm": r["arm"], "seed": r["seed"], f"SFT {metric}": r["sft_score"], f"held-out {metric}": r["score"],
             "95% CI": _ci(r["score_ci"]),
             f"{metric} - SFT": r["gain"], "gain 95% CI": _ci(r["gain_ci"]), "win rate vs SFT": r["win_rate"],
             "win 95% CI": _ci(r["win_ci"]), "KL to SFT": r["kl"], "proxy": r["proxy"], "train samples": r["samples"],
             "tokens generated": r["tokens"], "wall min": None if r["seconds"] is None else r["seconds"] / 60,
             "peak RSS GB": r["peak_rss_gb"]} for r in results]


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


def write_compare_report(sweep_dir: str | Path) -> dict[str, Path] | None:
    sweep_dir = Path(sweep_dir)
    results = collect(sweep_dir)
    if not results:
        return None
    metric, figures = results[0]["metric"], sweep_dir / "figures"
    figures.mkdir(exist_ok=True)
    pairs = paired_differences(results)
    frontier_rows = [{"arm": r["arm"], "seed": r["seed"], **p} for r in results for p in r["points"]]
    paths = {"csv": sweep_dir / "compare.csv", "pairs": sweep_dir / "pairs.csv", "frontier": sweep_dir / "frontier.csv"}
    _write_csv(paths["csv"], [{k: v for k, v in r.items() if k not in ("points", "per_prompt", "shared")} for r in results])
    _write_csv(paths["pairs"], pairs)
    _write_csv(paths["frontier"], frontier_rows)
    shared = {name: s for r in results for name, s in r["shared"].items()}
    intro = (f"{len({r['arm'] for r in results})} arms, seeds {sorted({r['seed'] for r in results})}, on "
             f"{results[0]['n_prompts']} held-out prompts scored by {'the gold judge' if metric == 'gold' else 'exact accuracy'}; "
             f"every CI is a 95% percentile bootstrap over prompts ({BOOTSTRAP} resamples); each gain is against the "
             "arm's own SFT (the same SFT for arms that share their stages). KL to SFT is the summed per-token KL along each policy's greedy replies "
             "(docs/algorithms.md §5.2); train samples and tokens are the responses each arm generated to learn from; "
             "wall time and peak RSS are the arm's own stages. Shared stages (run once, by the first job that needed "
             "them): " + (", ".join(f"{k} {v / 60:.1f} min" for k, v in shared.items()) or "none run in this sweep") + ".")
    generated = sorted({r["samples"] for r in results})
    if len(generated) > 1:
        intro += (f" The arms generated different numbers of training samples ({generated}) although their configs "
                  "promised the same: a prompt set ran out or an algorithm generated extra (compare.csv, samples).")
    sections = [
        Section("Arms", intro, [Table.from_records("Per arm and seed", arm_rows(results))],
                [(f"Held-out {metric} per arm with 95% CI (one marker per seed)", plot_final(results, figures / "final.png"))]),
        Section("KL-gold frontier", f"Held-out {metric} against sqrt(KL to SFT) at SFT, each training snapshot and "
                "the final policy (docs/algorithms.md §5.3).",
                [Table.from_records("Frontier points", frontier_rows)],
                [(f"{metric} vs sqrt(KL)", plot_frontier(results, figures / "frontier.png"))]),
        Section("Paired differences", "Arm A minus arm B on the same prompts (same seed); a CI that excludes 0 says "
                "the difference is resolved at this sample size.", [Table.from_records("A - B", pairs)]),
    ]
    if metric == "gold" and any(p.get("proxy") is not None for r in results for p in r["points"]):
        sections.append(Section("Proxy and gold", "Reward-model score against gold over each arm's checkpoints: "
                                "where the proxy rises and gold does not, the arm exploits the reward model.", [],
                                [("proxy vs gold", plot_proxy_gold(results, figures / "proxy_gold.png"))]))
    paths.update(write_report(sweep_dir, sections, title=f"Algorithm comparison: {sweep_dir.name}"))
    return paths
