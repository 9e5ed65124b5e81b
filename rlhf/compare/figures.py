"""The comparison report's figures, sized to be read at 100% in a browser: one colour per arm, one marker per
seed, so seeds show as spread."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MARKERS = ("o", "s", "^", "D", "v", "P", "X")
FONT = {"font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12, "legend.fontsize": 10}


def _styles(results: list[dict]) -> tuple[dict, dict]:
    arms = list(dict.fromkeys(r["arm"] for r in results))
    seeds = sorted({r["seed"] for r in results})
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return ({a: cycle[i % len(cycle)] for i, a in enumerate(arms)},
            {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(seeds)})


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _label(r: dict, several_seeds: bool) -> str:
    return f"{r['arm']} (seed {r['seed']})" if several_seeds else r["arm"]


def plot_frontier(results: list[dict], path: Path) -> Path:
    """Score against sqrt(KL to SFT) over each run's checkpoints, SFT at the origin of every line."""
    colours, markers = _styles(results)
    several = len(markers) > 1
    metric = results[0]["metric"]
    with plt.rc_context(FONT):
        fig, ax = plt.subplots(figsize=(9, 5.5))
        for r in results:
            xs, ys = [p["sqrt_kl"] for p in r["points"]], [p[metric] for p in r["points"]]
            ax.plot(xs, ys, marker=markers[r["seed"]], color=colours[r["arm"]], label=_label(r, several), linewidth=2)
        ax.set_xlabel("sqrt(KL to SFT), nats^0.5 per reply")
        ax.set_ylabel(f"held-out {metric}")
        ax.set_title(f"{metric} vs KL: SFT, training snapshots, final policy")
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        return _save(fig, path)


def plot_proxy_gold(results: list[dict], path: Path) -> Path:
    """Reward-model score (x) against gold (y) over each run's checkpoints."""
    colours, markers = _styles(results)
    several = len(markers) > 1
    with plt.rc_context(FONT):
        fig, ax = plt.subplots(figsize=(9, 5.5))
        for r in results:
            points = [p for p in r["points"] if p.get("proxy") is not None]
            if points:
                ax.plot([p["proxy"] for p in points], [p["gold"] for p in points], marker=markers[r["seed"]],
                        color=colours[r["arm"]], label=_label(r, several), linewidth=2)
        ax.set_xlabel("proxy: reward-model score")
        ax.set_ylabel("gold reward")
        ax.set_title("Proxy vs gold over training checkpoints")
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        return _save(fig, path)


def plot_final(results: list[dict], path: Path) -> Path:
    """Final held-out score per arm with its 95% CI; seeds of an arm side by side; SFT as a dashed line."""
    colours, markers = _styles(results)
    arms = list(colours)
    seeds = list(markers)
    metric = results[0]["metric"]
    width = 0.6 / max(1, len(seeds))
    with plt.rc_context(FONT):
        fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(arms) + 2), 5))
        for r in results:
            x = arms.index(r["arm"]) + (seeds.index(r["seed"]) - (len(seeds) - 1) / 2) * width
            low, high = r["score_ci"]
            ax.errorbar(x, r["score"], yerr=[[r["score"] - low], [high - r["score"]]], fmt=markers[r["seed"]],
                        color=colours[r["arm"]], capsize=5, markersize=8, linewidth=2)
        ax.axhline(results[0]["sft_score"], color="grey", linestyle="--", linewidth=1.5, label="SFT")
        ax.set_xticks(range(len(arms)), arms, rotation=20, ha="right")
        ax.set_ylabel(f"held-out {metric} (95% CI)")
        ax.set_title(f"Final policies: held-out {metric}")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="best")
        return _save(fig, path)
