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

A file is read and graded line by line; what the summary keeps of a sample is a few numbers in
arrays (ScoredColumns: its prompt, correct, score, parsed, subset values), and `--scored` rows are
written as they are graded, to a file published once the summary is made.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from rlhf.core.errors import ConfigError, DataError
from rlhf.data.jsonl import chunks, iter_jsonl, write_jsonl_atomic
from rlhf.data.row_keys import key_digest
from rlhf.evaluate.pass_at_k import pass_at_k
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


def iter_samples(path: str | Path) -> Iterator[dict]:
    """One {"id", "prompt", "response", "metadata"} per sample, in file order, read line by line."""
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
        if not isinstance(responses, list) or not responses or not all(isinstance(r, str) for r in responses):
            raise DataError("'response' must be a string ('responses' a non-empty list of strings), got "
                            f"{row.get('response', row.get('responses'))!r:.60}", source=str(path), record=line_no)
        for response in responses:
            yield {"id": pid, "prompt": prompt, "response": response, "metadata": metadata}


def load_samples(path: str | Path) -> list[dict]:
    """One {"id", "prompt", "response", "metadata"} per sample, in file order."""
    samples = list(iter_samples(path))
    if not samples:
        raise DataError("no samples: the file has no rows", source=str(path))
    return samples


def iter_scored(samples: Iterable[dict], reward, part: str | None = None, threshold: float = 0.5,
                batch_size: int = 256) -> Iterator[dict]:
    """Each sample with `score` (the total), `part_score`, `correct`, `parsed` (the part's own
    `parsed` detail, None when it reports none) and `details` of its reward, graded `batch_size`
    samples at a time as they come."""
    names = reward.names
    part = part or names[0]
    if part not in names:
        raise ConfigError("--part", f"the reward has parts {names}; got {part!r}")
    for chunk in chunks(samples, batch_size):
        result = reward([s["prompt"] for s in chunk], [s["response"] for s in chunk], [s["metadata"] for s in chunk])
        for sample, row in zip(chunk, result.rows()):
            value = row["rewards"][part]
            yield {**sample, "score": row["reward"], "part_score": value, "correct": value >= threshold,
                   "parsed": row["details"].get(part, {}).get("parsed"), "details": row["details"]}


def score_samples(samples: Sequence[dict], reward, part: str | None = None, threshold: float = 0.5,
                  batch_size: int = 256) -> list[dict]:
    return list(iter_scored(samples, reward, part, threshold, batch_size))


def clustered_accuracy(flags_by_prompt: Sequence[Sequence[bool]], ddof: int = 0, z: float = 1.96,
                       bootstrap: int = 0, seed: int = 0) -> dict:
    """accuracy, SE and normal CI over prompts (formula in the module docstring); a percentile
    bootstrap CI over prompts too when bootstrap > 0."""
    return accuracy_of_means(np.array([sum(f) / len(f) for f in flags_by_prompt], dtype=float), ddof, z, bootstrap,
                             seed)


def accuracy_of_means(means: np.ndarray, ddof: int = 0, z: float = 1.96, bootstrap: int = 0, seed: int = 0) -> dict:
    """clustered_accuracy from the per-prompt accuracies m_i."""
    n = len(means)
    if n == 0:
        raise ValueError("accuracy needs at least one prompt")
    p = float(means.mean())
    se = math.sqrt(float(((means - p) ** 2).sum()) / (n * (n - ddof))) if n - ddof > 0 else float("nan")
    low, high = normal_ci(p, se, z)
    out = {"accuracy": p, "se": se, "ci95": [low, high]}
    if bootstrap:
        out["bootstrap_ci95"] = list(bootstrap_ci(means, bootstrap, 0.95, seed))
    return out


PARSED_CODE = {None: -1, False: 0, True: 1}


class ScoredColumns:
    """Per scored sample what accuracy_summary reads, in arrays (no Python object per sample or per
    prompt): its prompt id as an 8-byte digest and as UTF-8 bytes (for messages), correct, score,
    parsed (-1 = the part reports none) and the value of each subset field (numbered per field)."""

    def __init__(self, fields: Sequence[str] = SUBSET_FIELDS):
        self.fields = tuple(fields)
        self.digests, self.correct, self.score, self.parsed = array("Q"), bytearray(), array("d"), array("b")
        self.ids, self.id_ends = bytearray(), array("Q")
        self.values = {f: array("I") for f in self.fields}
        self.value_names: dict[str, dict[str, int]] = {f: {} for f in self.fields}
        self.held: dict[str, set[int]] = {f: set() for f in self.fields}   # values of rows whose metadata has f
        self._prompt: np.ndarray | None = None

    def add(self, row: dict) -> None:
        pid = str(row["id"])
        self.digests.append(key_digest(pid))
        self.ids += pid.encode("utf-8")
        self.id_ends.append(len(self.ids))
        self.correct.append(bool(row["correct"]))
        self.score.append(float(row["score"]))
        self.parsed.append(PARSED_CODE.get(row["parsed"], -1))
        for f in self.fields:
            names = self.value_names[f]
            code = names.setdefault(str(row["metadata"].get(f)), len(names))
            self.values[f].append(code)
            if f in row["metadata"]:
                self.held[f].add(code)
        self._prompt = None

    def __len__(self) -> int:
        return len(self.correct)

    def prompt(self) -> np.ndarray:
        """Each sample's prompt number, prompts numbered in the order they first appear."""
        if self._prompt is None:
            _, first, inverse = np.unique(np.frombuffer(self.digests, dtype=np.uint64), return_index=True,
                                          return_inverse=True)
            number = np.empty(len(first), dtype=np.uint32)
            number[np.argsort(first)] = np.arange(len(first), dtype=np.uint32)
            self._prompt = number[inverse]
        return self._prompt

    def varying_fields(self) -> list[str]:
        """The fields that some metadata holds with more than one value."""
        return [f for f in self.fields if len(self.held[f]) > 1]

    def prompt_id(self, number: int) -> str:
        sample = int(np.flatnonzero(self.prompt() == number)[0])
        start = self.id_ends[sample - 1] if sample else 0
        return self.ids[start:self.id_ends[sample]].decode("utf-8")


def _per_prompt(columns: ScoredColumns, mask: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """Of the selected samples: (prompt numbers, samples n_i and correct c_i per prompt, each
    sample's place within its prompt, its prompt's index, its correctness), prompts in first-seen order."""
    prompt = columns.prompt()
    correct = np.frombuffer(columns.correct, dtype=np.uint8)
    if mask is None:   # every prompt: numbers 0..P-1 already
        numbers, group = np.arange(int(prompt.max()) + 1), prompt
    else:
        numbers, group = np.unique(prompt[mask], return_inverse=True)   # numbers are first-seen order
        correct = correct[mask]
    n = np.bincount(group, minlength=len(numbers))
    c = np.bincount(group, weights=correct, minlength=len(numbers))
    order = np.argsort(group, kind="stable")
    place = np.empty(len(group), dtype=np.int64)
    place[order] = np.arange(len(group)) - np.repeat(np.cumsum(n) - n, n)
    return numbers, n, c, place, group, correct


def _group_summary(columns: ScoredColumns, mask: np.ndarray | None, ks: Sequence[int], ddof: int, z: float,
                   bootstrap: int, seed: int) -> dict:
    numbers, n, c, place, group, correct = _per_prompt(columns, mask)
    score = np.frombuffer(columns.score, dtype=float)
    parsed = np.frombuffer(columns.parsed, dtype=np.int8)
    if mask is not None:
        score, parsed = score[mask], parsed[mask]
    out = {"n_prompts": len(numbers), "n_samples": len(group), **accuracy_of_means(c / n, ddof, z, bootstrap, seed),
           "mean_reward": float(score.mean())}
    if (parsed >= 0).any():
        out["unparsed"] = int((parsed == 0).sum())
    for k in (k for k in ks if k <= n.min()):
        first_k = np.bincount(group[place < k], weights=correct[place < k], minlength=len(numbers))
        out[f"mean@{k}"] = float((first_k / k).mean())                 # mean correctness of the first k
        out[f"pass@{k}"] = sum(pass_at_k(int(ni), int(ci), k) for ni, ci in zip(n, c)) / len(n)
    return out


def subset_fields(scored: Sequence[dict]) -> list[str]:
    """The SUBSET_FIELDS that some metadata holds with more than one value."""
    return [f for f in SUBSET_FIELDS if len({str(r["metadata"].get(f)) for r in scored if f in r["metadata"]}) > 1]


def accuracy_summary(scored: Iterable[dict] | ScoredColumns, ks: Sequence[int] = (1,), by: Sequence[str] | None = None,
                     ddof: int = 0, z: float = 1.96, bootstrap: int = 0, seed: int = 0) -> dict:
    """Overall and per-subset accuracy (CI), mean reward, unparsed count, mean@k and pass@k, of
    scored rows or of their columns.

    k values larger than a prompt's sample count are an error overall, and skipped in subsets
    that have fewer samples per prompt."""
    columns = scored if isinstance(scored, ScoredColumns) else _columns(scored, by)
    if not len(columns):
        raise ValueError("accuracy needs at least one scored sample")
    numbers, n, *_ = _per_prompt(columns, None)
    too_big = [k for k in ks if k > n.min()]
    if too_big:
        raise DataError(f"pass@k needs k samples of every prompt; asked for k={too_big}, but some prompt has only "
                        f"{n.min()} (e.g. {columns.prompt_id(int(numbers[n.argmin()]))})")
    out = {"all": _group_summary(columns, None, ks, ddof, z, bootstrap, seed), "subsets": {}}
    for field in (columns.varying_fields() if by is None else by):
        codes = np.frombuffer(columns.values[field], dtype=np.uint32)
        names = sorted(columns.value_names[field].items(), key=lambda item: _natural(item[0]))
        out["subsets"][field] = {value: _group_summary(columns, codes == code, ks, ddof, z, bootstrap, seed)
                                 for value, code in names if (codes == code).any()}
    return out


def _columns(scored: Iterable[dict], by: Sequence[str] | None) -> ScoredColumns:
    columns = ScoredColumns(SUBSET_FIELDS if by is None else by)
    for row in scored:
        columns.add(row)
    return columns


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
                     part: str | None = None, threshold: float = 0.5, scored_path: str | Path | None = None,
                     **options) -> dict:
    """The summary of one generations or samples file under a reward config, read and graded line by
    line; with `scored_path`, every scored sample is written there too, published with the summary."""
    reward = build_reward(reward_node(reward_spec), key="--reward")
    columns = ScoredColumns(SUBSET_FIELDS if by is None else by)
    summary: dict = {}

    def scored_then_summary() -> Iterator[dict]:
        for row in iter_scored(iter_samples(path), reward, part, threshold):
            columns.add(row)
            yield row
        if not len(columns):
            raise DataError("no samples: the file has no rows", source=str(path))
        summary.update(accuracy_summary(columns, ks, by, **options))

    if scored_path is None:
        for _ in scored_then_summary():
            pass
    else:
        write_jsonl_atomic(scored_path, scored_then_summary())
    return {"generations": str(path), "reward": reward_spec, "part": part or reward.names[0],
            "threshold": threshold, **summary}
