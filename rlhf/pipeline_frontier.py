"""The KL-gold frontier of one policy run (`evaluate.frontier`, experiment=compare; docs/algorithms.md §5.3): the
policy at each training snapshot (callbacks/policy_snapshots.py) and at the end answers the evaluate stage's
held-out prompts greedily, and each checkpoint gets its mean score there (the gold judge's reward, or exact
accuracy under `evaluate.mode: accuracy`), its proxy (the reward model, when there is one) and its mean KL to
SFT along its own replies (rlhf.evaluate.policy_kl). SFT is the point at KL 0.

The final policy's and SFT's replies are the evaluate stage's own files, so only the snapshots cost new
generations (one greedy pass over the held-out prompts each). frontier.json also keeps the per-prompt scores
of SFT and of the final policy (the paired differences of rlhf.compare) and what the run trained on: the
responses it generated for training (RL rollouts, or the sampled responses DPO's pairs came from) and their tokens.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from rlhf.core.atomic import publish_file
from rlhf.data.jsonl import iter_jsonl
from rlhf.evaluate.accuracy import load_samples, score_samples
from rlhf.evaluate.generation import DecodingSettings, generate_file, load_model_for_generation
from rlhf.evaluate.policy_kl import reply_kl
from rlhf.pipeline_accuracy import accuracy_config, reward_spec
from rlhf.rewards.build import build_reward

SNAPSHOTS = "snapshots"   # callbacks.policy_snapshots writes <stage dir>/snapshots/step_<n>/merged


def checkpoints(runs: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """(label, HF folder) of every snapshot and final export of the policy runs, in training order."""
    out = []
    for name, folder in runs:
        prefix = "" if name in ("ppo", "dpo") else name.rsplit("/", 1)[0] + "/"
        steps = sorted((folder / SNAPSHOTS).glob("step_*/merged"), key=lambda p: int(p.parent.name[5:]))
        out += [(f"{prefix}{p.parent.name}", p) for p in steps]
        out.append((f"{prefix}final", folder / "model" / "merged"))
    return out


class CheckpointScorer:
    """Per-prompt score of a generations file: the gold annotator's reward, or 0/1 correctness."""

    def __init__(self, cfg: DictConfig):
        self.mode = (cfg.get("evaluate") or {}).get("mode", "gold")
        if self.mode == "accuracy":
            self.spec = accuracy_config(cfg)
            self.reward = build_reward(reward_spec(self.spec.reward), key="evaluate.reward")
        else:
            self.gold = hydra.utils.instantiate(cfg.annotator)

    @property
    def metric(self) -> str:
        return "accuracy" if self.mode == "accuracy" else "gold"

    def __call__(self, path: Path) -> dict[str, float]:
        if self.mode == "accuracy":
            rows = score_samples(load_samples(path), self.reward, self.spec.part, self.spec.threshold)
            return {row["id"]: float(row["correct"]) for row in rows}
        rows = [row for _, row in iter_jsonl(path)]
        scores = self.gold.score([r["prompt"] for r in rows], [r["response"] for r in rows]).tolist()
        return {str(r["id"]): s for r, s in zip(rows, scores)}


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def training_generations(policy: str, runs: list[tuple[str, Path]], sample_files: list[Path], tokenizer) -> dict:
    """Responses the run generated to train on and their tokens: RL rollouts (samples.jsonl of each policy run),
    or the sampled responses of the annotations DPO trained on."""
    if policy == "ppo":
        texts = [row["response"] for _, folder in runs if (folder / "samples.jsonl").exists()
                 for _, row in iter_jsonl(folder / "samples.jsonl")]
    else:
        texts = [r for path in sample_files if path.exists() for _, row in iter_jsonl(path) for r in row["responses"]]
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)   # + end of turn
    return {"samples": len(texts), "tokens": tokens}


def frontier_stage(cfg: DictConfig, sft_dir: Path, runs: list[tuple[str, Path]], evaluate_dir: Path, reward_dir: Path,
                   out_path: Path, policy: str, sample_files: list[Path]) -> Path:
    """Score SFT, every snapshot and the final policy; write frontier.json (the stage's artifact) last."""
    out_dir = out_path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = cfg.evaluate
    scorer = CheckpointScorer(cfg)
    sft_file = evaluate_dir / "generations_sft.jsonl"
    records = [{k: row[k] for k in ("id", "dataset", "prompt", "metadata") if k in row} for _, row in iter_jsonl(sft_file)]
    decoding_cfg = OmegaConf.to_container(spec.decoding, resolve=True)
    decoding = DecodingSettings(**decoding_cfg, seed=cfg.seed)
    reference, tokenizer = load_model_for_generation(str(sft_dir))
    reference.eval()
    proxy = _proxy_scorer(reward_dir)
    sft_scores = scorer(sft_file)
    sft_rows = [row for _, row in iter_jsonl(sft_file)]
    points = [{"checkpoint": "sft", scorer.metric: _mean(sft_scores.values()), "kl": 0.0, "sqrt_kl": 0.0,
               "proxy": _mean(proxy(sft_rows)) if proxy else None}]
    final_scores, final_kl = {}, {}
    listed = checkpoints(runs)
    for i, (label, model_dir) in enumerate(listed):
        last = i == len(listed) - 1
        target = evaluate_dir / f"generations_{policy}.jsonl" if last else out_dir / f"generations_{label.replace('/', '_')}.jsonl"
        if not target.exists():
            generate_file(target, records, str(model_dir), decoding, model_name=label, batch_size=spec.batch_size)
        rows = [row for _, row in iter_jsonl(target)]
        model, _ = load_model_for_generation(str(model_dir))
        model.eval()
        kl = reply_kl(model, reference, tokenizer, [r["prompt"] for r in rows], [r["response"] for r in rows],
                      template=decoding.template)
        del model
        scores = scorer(target)
        points.append({"checkpoint": label, scorer.metric: _mean(scores.values()), "kl": _mean(kl),
                       "sqrt_kl": math.sqrt(max(_mean(kl), 0.0)), "proxy": _mean(proxy(rows)) if proxy else None})
        if last:
            final_scores, final_kl = scores, {str(r["id"]): v for r, v in zip(rows, kl)}
    result = {"mode": scorer.mode, "metric": scorer.metric, "policy": policy, "points": points,
              "sft_scores": sft_scores, "final_scores": final_scores, "final_kl": final_kl,
              "training": training_generations(policy, runs, sample_files, tokenizer)}
    return publish_file(out_path, lambda handle: handle.write(json.dumps(result, indent=2)), text=True)


def _proxy_scorer(reward_dir: Path):
    """rows -> reward-model scores, or None without a reward model."""
    if not reward_dir.exists():
        return None
    from rlhf.reward_model.scoring import load_reward_model

    scorer = load_reward_model(str(reward_dir))
    return lambda rows: scorer.score([r["prompt"] for r in rows], [r["response"] for r in rows]).tolist()
