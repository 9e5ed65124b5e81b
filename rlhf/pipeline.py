"""The whole RLHF pipeline in one run dir: SFT -> sample K -> annotate -> RM -> PPO -> evaluate.

The stages are the generic flow of docs/methods.md §1.

    python -m rlhf.pipeline                          # CPU demo on the built-in task
    python -m rlhf.pipeline -m experiment=crs ppo.overrides.reward_fn.w=0.25,0.5,0.75
    python -m rlhf.pipeline run_dir=runs/pipeline/<time>   # resume: finished stages are skipped

Each training stage is `rlhf.train.run` on `configs/train.yaml` composed with the stage's groups and
overrides, so anything `python -m rlhf.train` accepts can be set per stage. A stage is done when its
artifact exists (artifacts are published atomically); a stopped stage resumes from its last.ckpt.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import torch
from hydra import compose
from omegaconf import DictConfig, OmegaConf

import rlhf.config.store  # noqa: F401  (registers the config schemas before Hydra composes)
from rlhf.data.jsonl import iter_jsonl, write_jsonl_atomic
from rlhf.data.source_spec import load_source
from rlhf.core.errors import ConfigError, exit_on_error
from rlhf.pipeline_report import evaluate_stage, headline_metrics
from rlhf.core.run_info import write_run_info
from rlhf.sweep_summary import write_final_metrics

log = logging.getLogger(__name__)

STAGES = ("pre_sft", "sft", "sample", "annotate", "reward", "reward_absolute", "ppo", "evaluate")


def stage_dir(cfg: DictConfig, stage: str) -> Path:
    """Stages listed in `shared_stages` live in `shared_dir`, so the jobs of a sweep over a later
    stage (the CRS weight) build them once and then reuse them."""
    root = cfg.shared_dir if stage in (cfg.get("shared_stages") or []) else cfg.run_dir
    return Path(root) / stage


def artifact_path(cfg: DictConfig, stage: str) -> Path:
    """Where a stage's product lives: given in `artifacts`, else inside the run dir."""
    given = (cfg.get("artifacts") or {}).get(stage)
    if given:
        return Path(given)
    products = {"pre_sft": "model/merged", "sft": "model/merged", "reward": "model/merged", "reward_absolute": "model/merged", "ppo": "model/merged",
                "sample": "samples.jsonl", "annotate": "rankings.jsonl", "evaluate": "report.md"}
    return stage_dir(cfg, stage) / products[stage]


def wire_inputs(cfg: DictConfig, stage: str, stage_cfg: DictConfig) -> None:
    """Fill the inputs a stage leaves as `???` with the artifacts of earlier stages: the annotations
    for the reward models, the reward models for PPO. A value set in config is never replaced."""
    annotations = artifact_path(cfg, "annotate")
    if stage in ("reward", "reward_absolute"):
        source = annotations if stage == "reward" else annotations.with_name("labels.jsonl")
        for spec in stage_cfg.data.get("sources") or []:
            if "path" in spec.keys() and OmegaConf.is_missing(spec, "path"):
                spec.path = str(source)
    if stage == "ppo" and "reward_fn" in stage_cfg:
        node = stage_cfg.reward_fn
        if "path" in node.keys() and OmegaConf.is_missing(node, "path"):
            node.path = str(artifact_path(cfg, "reward"))
        for part, producer in (("preference", "reward"), ("absolute", "reward_absolute")):
            if part in node.keys() and OmegaConf.is_missing(node[part], "path"):
                node[part].path = str(artifact_path(cfg, producer))


def compose_training_stage(cfg: DictConfig, stage: str, model_source: str | None) -> DictConfig:
    """configs/train.yaml + the stage's groups + common keys + the stage's overrides."""
    spec = cfg[stage]
    overrides = [f"{group}={option}" for group, option in (spec.get("groups") or {}).items()]
    train_cfg = compose(config_name="train", overrides=overrides)
    out = stage_dir(cfg, stage)
    # Resolved in the pipeline's context (run_dir, model), then merged into the stage's train config.
    common = OmegaConf.to_container(cfg.common, resolve=True)
    own = OmegaConf.to_container(spec.get("overrides") or OmegaConf.create({}), resolve=True)
    OmegaConf.set_struct(train_cfg, False)   # overrides may add keys (any Trainer argument); validated at run
    merged = OmegaConf.merge(train_cfg, common, own)
    merged.paths.output_dir = str(out)
    merged.task_name = stage
    if model_source is not None:
        merged.model.source = model_source
        merged.model.tokenizer = None
    wire_inputs(cfg, stage, merged)
    last = out / "checkpoints" / "last.ckpt"
    merged.ckpt_path = str(last) if last.is_file() else None
    return merged


def run_training_stage(cfg: DictConfig, stage: str, model_source: str | None) -> Path:
    from rlhf.train import run

    stage_cfg = compose_training_stage(cfg, stage, model_source)
    log.info("stage %s -> %s", stage, stage_dir(cfg, stage))
    run(stage_cfg)
    return artifact_path(cfg, stage)


def sample_stage(cfg: DictConfig, policy: Path) -> Path:
    """K responses per prompt from the SFT policy (ICE-GRT §3.3 samples 5), sampled in one batch layout."""
    from rlhf.evaluate.generation import DecodingSettings, generate_batch, load_model_for_generation

    spec = cfg.sample
    prompts = load_source(OmegaConf.to_container(spec.prompts), kind="prompt", seed=cfg.seed, key="sample.prompts")
    if not prompts:
        raise ConfigError("sample.prompts", "the prompt source gave no prompts")
    decoding = DecodingSettings(**OmegaConf.to_container(spec.decoding), seed=cfg.seed)
    decoding.check()
    model, tokenizer = load_model_for_generation(str(policy))
    model.eval()
    torch.manual_seed(cfg.seed)
    per_call = max(1, spec.batch_size // spec.k)
    rows = []
    for start in range(0, len(prompts), per_call):
        chunk = prompts[start:start + per_call]
        texts = generate_batch(model, tokenizer, [p["prompt"] for p in chunk for _ in range(spec.k)], decoding)
        rows += [{"id": p.get("id", str(start + i)), "prompt": p["prompt"], "responses": texts[i * spec.k:(i + 1) * spec.k]}
                 for i, p in enumerate(chunk)]
    return write_jsonl_atomic(artifact_path(cfg, "sample"), rows)


def annotate_stage(cfg: DictConfig, samples: Path) -> Path:
    """Rank each prompt's K responses (and label them, for an absolute RM) with the configured annotator."""
    annotator = hydra.utils.instantiate(cfg.annotator)
    rankings, labelled = [], []
    for _, row in iter_jsonl(samples):
        ranks = annotator.rank(row["prompt"], row["responses"])
        rankings.append({**row, "ranks": list(ranks), "source": "pipeline"})
        if cfg.annotate.labels:
            labelled += [{"prompt": row["prompt"], "response": r, "labels": annotator.labels(row["prompt"], r)}
                         for r in row["responses"]]
    out = artifact_path(cfg, "annotate")
    write_jsonl_atomic(out, rankings)
    if labelled:
        write_jsonl_atomic(out.with_name("labels.jsonl"), labelled)
    return out


def run(cfg: DictConfig) -> dict:
    unknown = [s for s in cfg.stages if s not in STAGES]
    if unknown:
        raise ConfigError("stages", f"unknown stage(s) {unknown}; allowed: {list(STAGES)}")
    write_run_info(cfg, cfg.run_dir)
    done = {}
    for stage in cfg.stages:
        product = artifact_path(cfg, stage)
        if product.exists():
            log.info("stage %s: artifact %s exists, skipped", stage, product)
            done[stage] = product
            continue
        if stage == "pre_sft":
            done[stage] = run_training_stage(cfg, stage, None)
        elif stage == "sft":
            # The thesis curriculum (thesis §5.2): stage 2 starts from stage 1's merged weights.
            start = str(artifact_path(cfg, "pre_sft")) if "pre_sft" in cfg.stages else None
            done[stage] = run_training_stage(cfg, stage, start)
        elif stage == "sample":
            done[stage] = sample_stage(cfg, artifact_path(cfg, "sft"))
        elif stage == "annotate":
            done[stage] = annotate_stage(cfg, artifact_path(cfg, "sample"))
        elif stage in ("reward", "reward_absolute"):
            done[stage] = run_training_stage(cfg, stage, str(artifact_path(cfg, "sft")))
        elif stage == "ppo":
            done[stage] = run_training_stage(cfg, stage, str(artifact_path(cfg, "sft")))
        elif stage == "evaluate":
            done[stage] = evaluate_stage(cfg, artifact_path(cfg, "sft"), artifact_path(cfg, "ppo"),
                                         stage_dir(cfg, "ppo"), artifact_path(cfg, "reward"),
                                         stage_dir(cfg, "evaluate"))
    summary = {stage: str(path) for stage, path in done.items()}
    (Path(cfg.run_dir) / "pipeline.json").write_text(json.dumps(summary, indent=2))
    final = stage_dir(cfg, "evaluate") / "summary.json"
    if final.exists():
        write_final_metrics(cfg.run_dir, headline_metrics(json.loads(final.read_text())))
    return summary


@hydra.main(version_base="1.3", config_path="../configs", config_name="pipeline")
@exit_on_error
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
