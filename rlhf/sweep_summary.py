"""Hydra callback: when a multirun ends, one table (CSV + markdown) and one plot of every job's final
metrics, keyed by the overrides that distinguish the jobs (e.g. the CRS weight w)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

FINAL_METRICS = "final_metrics.json"


def write_final_metrics(output_dir: str | Path, metrics: dict) -> Path:
    """Each job leaves its final scalar metrics here for the sweep table."""
    path = Path(output_dir) / FINAL_METRICS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return path


def collect_jobs(sweep_dir: Path) -> list[dict]:
    """Rows {job, <override keys>..., <metrics>...} for every job dir that finished."""
    rows = []
    for metrics_file in sorted(sweep_dir.glob(f"*/{FINAL_METRICS}"), key=lambda p: p.parent.name):
        job_dir = metrics_file.parent
        row = {"job": job_dir.name}
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        if overrides_file.exists():
            for override in yaml.safe_load(overrides_file.read_text()) or []:
                key, _, value = override.partition("=")
                row[key] = value
        row.update(json.loads(metrics_file.read_text()))
        rows.append(row)
    return rows


def varying_keys(rows: list[dict], metric_keys: set[str]) -> list[str]:
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k != "job" and k not in metric_keys]
    return [k for k in keys if len({str(r.get(k)) for r in rows}) > 1]


def write_sweep_summary(sweep_dir: str | Path, metric: str | None = None) -> dict[str, Path] | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep_dir = Path(sweep_dir)
    rows = collect_jobs(sweep_dir)
    if not rows:
        return None
    metric_keys = {k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and k != "job"}
    columns = list(dict.fromkeys(k for r in rows for k in r))
    paths = {"csv": sweep_dir / "sweep_summary.csv", "markdown": sweep_dir / "sweep_summary.md",
             "plot": sweep_dir / "sweep_summary.png"}
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = [f"{r[c]:.4g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    paths["markdown"].write_text("\n".join(lines) + "\n")
    metric = metric if metric in metric_keys else (sorted(metric_keys)[0] if metric_keys else None)
    if metric is not None:
        labels = [", ".join(f"{k}={r.get(k)}" for k in varying_keys(rows, metric_keys)) or r["job"] for r in rows]
        fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(rows)), 3.5))
        ax.bar(range(len(rows)), [r.get(metric, float("nan")) for r in rows])
        ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} per sweep job")
        fig.tight_layout()
        fig.savefig(paths["plot"], dpi=100)
        plt.close(fig)
    else:
        paths.pop("plot")
    return paths


class SweepSummary(Callback):
    def __init__(self, metric: str | None = None):
        self.metric = metric

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        write_sweep_summary(config.hydra.sweep.dir, self.metric or config.get("optimized_metric"))
