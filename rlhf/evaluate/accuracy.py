"""Accuracy of generations under a verifiable reward, with a 95 % CI, per-subset tables, mean@k and
pass@k (`python -m rlhf.evaluate accuracy`).

A sample is correct when the score of the chosen reward part (default: the first) is at least
`threshold` (0.5: a 0/1 reward's 1). With n_i samples of prompt i and c_i of them correct, the
per-prompt accuracy is m_i = c_i / n_i and

    accuracy = (1/P) Σ_i m_i
    SE       = sqrt( Σ_i (m_i - accuracy)² / (P · (P - ddof)) )
    95 % CI  = accuracy ± 1.96 · SE           (rlhf.evaluate.stats.normal_ci)

so samples of one prompt count as one cluster; with one sample per prompt SE is the binomial
sqrt(p (1 - p) / (P - ddof)) of rlhf.evaluate.stats.standard_error. pass@k and mean@k are the
Chen et al. 2021 estimators of rlhf.evaluate.pass_at_k.

Input rows: a generations file (`generate`: one "response" per row, several rows per id for k
samples) or a samples file (`responses`: a list per row). Each row's `metadata` is what the reward
reads; a row without one gets {"id"} plus its `reference` as `answer` (GSM8K generations).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from omegaconf import OmegaConf

from rlhf.core.errors import ConfigError, DataError
from rlhf.data.jsonl import iter_jsonl
from rlhf.evaluate.pass_at_k import pass_at_k_summary
from rlhf.evaluate.stats import bootstrap_ci, normal_ci
from rlhf.rewards.build import build_reward

REWARD_DIR = Path(__file__).resolve().parents[2] / "configs" / "reward_fn"
SUBSET_FIELDS = ("subset", "level", "category")   # looked for in metadata when no --by is given


def reward_node(spec: str, reward_dir: Path = REWARD_DIR):
    """A reward config node from a yaml path or a configs/reward_fn/ name (math_answer, ...). A
    file's `defaults: [<kind>_schema]` gives its kind (the typed built-ins)."""
    path = Path(spec)
    if not path.is_file():
        path = reward_dir / f"{spec}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in reward_dir.glob("*.yaml"))
        raise ConfigError("--reward", f"{spec!r} is neither a yaml file nor a reward config name; names: {', '.join(names)}")
    node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    defaults = (node.pop("defaults", None) or []) if isinstance(node, dict) else []
    for entry in defaults:
        if isinstance(entry, str) and entry.endswith("_schema"):
            node.setdefault("kind", entry.removesuffix("_schema"))
    return node


def load_samples(path: str | Path) -> list[dict]:
    """One {"id", "prompt", "response", "metadata"} per sample, in file order."""
    samples = []
    for line_no, row in iter_jsonl(path):
        if not isinstance(row, dict) or "prompt" not in row or not ({"response", "responses"} & set(row)):
            raise DataError("a row needs 'prompt' and 'response' (a generations file) or 'responses' (a samples "
                            "file)", source=str(path), record=line_no)
        pid = str(row.get("id", f"line-{line_no}"))
        prompt = row["prompt"]
        prompt = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        metadata = row.get("metadata")
        if metadata is None:
            metadata = {"id": pid, **({"answer": row["reference"]} if "reference" in row else {})}
        if not isinstance(metadata, dict):
            raise DataError(f"'metadata' must be an object, got {type(metadata).__name__}", source=str(path),
                            record=line_no)
        metadata = {"id": pid, **metadata}
        for key in ("category", "dataset"):
            if key in row:
                metadata.setdefault(key, row[key])
        responses = row["responses"] if "responses" in row else [row["response"]]
        samples += [{"id": pid, "prompt": prompt, "response": r, "metadata": metadata} for r in responses]
    if not samples:
        raise DataError("no samples", source=str(path))
    return samples


def score_samples(samples: Sequence[dict], reward, part: str | None = None, threshold: float = 0.5,
                  batch_size: int = 256) -> list[dict]:
    """Each sample with `score` (the total), `part_score`, `correct`, `parsed` (the part's own
    `parsed` detail, None when it reports none) and `details` of its reward."""
    names = reward.names
    part = part or names[0]
    if part not in names:
        raise ConfigError("--part", f"the reward has parts {names}; got {part!r}")
    scored = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        result = reward([s["prompt"] for s in chunk], [s["response"] for s in chunk], [s["metadata"] for s in chunk])
        rows = result.rows()
        for sample, row in zip(chunk, rows):
            value = row["rewards"][part]
            scored.append({**sample, "score": row["reward"], "part_score": value, "correct": value >= threshold,
                           "parsed": row["details"].get(part, {}).get("parsed"), "details": row["details"]})
    return scored


def clustered_accuracy(flags_by_prompt: Sequence[Sequence[bool]], ddof: int = 0, z: float = 1.96,
                       bootstrap: int = 0, seed: int = 0) -> dict:
    """accuracy, SE and normal CI over prompts (formula in the module docstring); a percentile
    bootstrap CI over prompts too when bootstrap > 0."""
    means = [sum(f) / len(f) for f in flags_by_prompt]
    n = len(means)
    if n == 0:
        raise ValueError("accuracy needs at least one prompt")
    p = sum(means) / n
    se = math.sqrt(sum((m - p) ** 2 for m in means) / (n * (n - ddof))) if n - ddof > 0 else float("nan")
    low, high = normal_ci(p, se, z)
    out = {"accuracy": p, "se": se, "ci95": [low, high]}
    if bootstrap:
        out["bootstrap_ci95"] = list(bootstrap_ci(means, bootstrap, 0.95, seed))
    return out


def _flags_by_prompt(scored: Iterable[dict]) -> dict[str, list[bool]]:
    grouped: dict[str, list[bool]] = {}
    for row in scored:
        grouped.setdefault(row["id"], []).append(bool(row["correct"]))
    return grouped


def _group_summary(scored: list[dict], ks: Sequence[int], ddof: int, z: float, bootstrap: int, seed: int) -> dict:
    grouped = _flags_by_prompt(scored)
    out = {"n_prompts": len(grouped), "n_samples": len(scored),
           **clustered_accuracy(list(grouped.values()), ddof, z, bootstrap, seed),
           "mean_reward": sum(r["score"] for r in scored) / len(scored)}
    if any(r["parsed"] is not None for r in scored):
        out["unparsed"] = sum(r["parsed"] is False for r in scored)
    fewest = min(len(f) for f in grouped.values())
    usable = [k for k in ks if k <= fewest]
    if usable:
        summary = pass_at_k_summary(grouped, usable)
        out.update({key: summary[key] for k in usable for key in (f"mean@{k}", f"pass@{k}")})
    return out


def subset_fields(scored: Sequence[dict]) -> list[str]:
    """The SUBSET_FIELDS that some metadata holds with more than one value."""
    return [f for f in SUBSET_FIELDS if len({str(r["metadata"].get(f)) for r in scored if f in r["metadata"]}) > 1]


def accuracy_summary(scored: list[dict], ks: Sequence[int] = (1,), by: Sequence[str] | None = None, ddof: int = 0,
                     z: float = 1.96, bootstrap: int = 0, seed: int = 0) -> dict:
    """Overall and per-subset accuracy (CI), mean reward, unparsed count, mean@k and pass@k.

    k values larger than a prompt's sample count are an error overall, and skipped in subsets
    that have fewer samples per prompt."""
    grouped = _flags_by_prompt(scored)
    fewest = min(len(f) for f in grouped.values())
    too_big = [k for k in ks if k > fewest]
    if too_big:
        raise DataError(f"pass@k needs k samples of every prompt; asked for k={too_big}, but some prompt has only "
                        f"{fewest} (e.g. {next(i for i, f in grouped.items() if len(f) == fewest)})")
    out = {"all": _group_summary(scored, ks, ddof, z, bootstrap, seed), "subsets": {}}
    for field in (subset_fields(scored) if by is None else by):
        values = sorted({str(r["metadata"].get(field)) for r in scored}, key=_natural)
        out["subsets"][field] = {value: _group_summary([r for r in scored if str(r["metadata"].get(field)) == value],
                                                       ks, ddof, z, bootstrap, seed) for value in values}
    return out


def _natural(text: str):
    return (0, float(text), "") if _is_number(text) else (1, 0.0, text)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def markdown_tables(summary: dict, ks: Sequence[int] = (1,)) -> str:
    """One table overall and one per subset field: prompts, samples, accuracy, 95 % CI, pass@k."""
    cols = [f"pass@{k}" for k in ks]
    head = "| {} | prompts | samples | accuracy | 95% CI | " + " | ".join(cols) + " |"
    rule = "|---|---:|---:|---:|---|" + "---:|" * len(cols)

    def line(name, s):
        passes = " | ".join(f"{s[c]:.3f}" if c in s else "–" for c in cols)
        low, high = s["ci95"]
        return f"| {name} | {s['n_prompts']} | {s['n_samples']} | {s['accuracy']:.3f} | [{low:.3f}, {high:.3f}] | {passes} |"

    blocks = ["\n".join([head.format("set"), rule, line("all", summary["all"])])]
    for field, table in summary["subsets"].items():
        blocks.append("\n".join([head.format(field), rule] + [line(v, s) for v, s in table.items()]))
    return "\n\n".join(blocks) + "\n"


def accuracy_of_file(path: str | Path, reward_spec: str, ks: Sequence[int] = (1,), by: Sequence[str] | None = None,
                     part: str | None = None, threshold: float = 0.5, **options) -> tuple[dict, list[dict]]:
    """(summary, scored samples) of one generations or samples file under a reward config."""
    reward = build_reward(reward_node(reward_spec), key="--reward")
    scored = score_samples(load_samples(path), reward, part, threshold)
    summary = accuracy_summary(scored, ks, by, **options)
    return {"generations": str(path), "reward": reward_spec, "part": part or reward.names[0],
            "threshold": threshold, **summary}, scored
