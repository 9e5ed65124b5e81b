"""The whole RLHF pipeline in one run dir: SFT -> sample K -> annotate -> RM -> PPO -> evaluate.

The stages are the generic flow of docs/methods.md §1; DPO (experiment=dpo) replaces RM and PPO by one
policy stage trained on the annotations, and `rounds` > 1 repeats `round_stages` (experiment=dpo_iterative).

    python -m rlhf.pipeline                          # CPU demo on the built-in task
    python -m rlhf.pipeline experiment=dpo_iterative rounds=3
    python -m rlhf.pipeline experiment=rlvr          # SFT -> GRPO on a verifiable reward -> held-out accuracy
    python -m rlhf.pipeline -m experiment=crs ppo.overrides.reward_fn.w=0.25,0.5,0.75
    python -m rlhf.pipeline run_dir=runs/pipeline/<time>   # resume: finished stages are skipped
    python -m rlhf.pipeline experiment=compare       # every algorithm on the same stages: a sweep (rlhf/compare/)

Each training stage is `rlhf.train.run` on `configs/train.yaml` composed with the stage's groups and
overrides, so anything `python -m rlhf.train` accepts can be set per stage. A stage is done when its
artifact exists (artifacts are published atomically); a stopped stage resumes from its last.ckpt.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path

import hydra
import torch
from hydra import compose
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import rlhf.config.store  # noqa: F401  (registers the config schemas before Hydra composes)
from rlhf.config.entry_point import COMPOSE_ERRORS, CONFIG_DIR, composition_message, merge_message, run_hydra
from rlhf.config.pipeline_validation import validate_pipeline_config
from rlhf.config.validation import validate_config
from rlhf.data.jsonl import write_jsonl_atomic
from rlhf.data.samples import iter_samples
from rlhf.data.source_spec import load_source
from rlhf.core.errors import ConfigError, RLHFError, exit_on_error
from rlhf.core.resources import peak_rss_bytes, reset_peak_rss
from rlhf.pipeline_accuracy import EVALUATE_MODES, accuracy_headline_metrics, accuracy_stage
from rlhf.pipeline_frontier import frontier_stage
from rlhf.pipeline_report import evaluate_stage, headline_metrics
from rlhf.core.run_info import write_run_info
from rlhf.sweep_summary import write_final_metrics

log = logging.getLogger(__name__)

STAGES = ("pre_sft", "sft", "sample", "annotate", "reward", "reward_absolute", "ppo", "dpo", "evaluate", "frontier")
STAGE_TIMES = "stage_times.json"   # run_dir: wall seconds and peak RSS of each stage this run dir ran
POLICY_STAGES = ("ppo", "dpo")
"""Stages whose export is a policy: each starts from the current policy (SFT's export, then the last policy
stage's), the sample stage samples from it, and evaluate compares the last one with SFT."""


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
                "dpo": "model/merged", "sample": "samples.jsonl", "annotate": "rankings.jsonl", "evaluate": "report.md",
                "frontier": "frontier.json"}
    return stage_dir(cfg, stage) / products[stage]


def wire_inputs(cfg: DictConfig, stage: str, stage_cfg: DictConfig) -> None:
    """Fill the inputs a stage leaves as `???` with the artifacts of earlier stages: the annotations
    for the reward models and DPO, the reward models for PPO. A value set in config is never replaced."""
    annotations = artifact_path(cfg, "annotate")
    if stage in ("reward", "reward_absolute", "dpo"):
        source = annotations.with_name("labels.jsonl") if stage == "reward_absolute" else annotations
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
    if stage in POLICY_STAGES and cfg.get("logger"):
        # The pipeline's dashboards (logger=wandb|tensorboard) watch the policy stages, beside the stage's own csv.
        merged.logger = OmegaConf.merge(merged.logger or {}, OmegaConf.to_container(cfg.logger, resolve=True))
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
        rows += [{"id": p.get("id", str(start + i)), "prompt": p["prompt"], "responses": texts[i * spec.k:(i + 1) * spec.k],
                  **({"metadata": p["metadata"]} if "metadata" in p else {})}
                 for i, p in enumerate(chunk)]
    return write_jsonl_atomic(artifact_path(cfg, "sample"), rows)


def annotate_stage(cfg: DictConfig, samples: Path) -> Path:
    """Rank each prompt's K responses (and label them, for an absolute RM) with the configured annotator."""
    annotator = hydra.utils.instantiate(cfg.annotator)
    rankings, labelled = [], []
    for row in iter_samples(samples):
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


def round_config(cfg: DictConfig, round_no: int) -> DictConfig:
    """The pipeline config of round `round_no` (1-based) of the round stages: run dir run_dir/round_<r>,
    seed + r - 1. Round 1 keeps the shared and given artifacts of those stages; later rounds have new
    inputs (the previous round's policy), so none of their stages is shared or given."""
    out = copy.deepcopy(cfg)
    out.run_dir = str(Path(cfg.run_dir) / f"round_{round_no}")
    out.seed = cfg.seed + round_no - 1
    if round_no > 1:
        out.shared_stages = [s for s in cfg.get("shared_stages") or [] if s not in cfg.round_stages]
        for stage in cfg.round_stages:
            out.artifacts[stage] = None
    return out


def schedule(cfg: DictConfig) -> list[tuple[str, DictConfig, str]]:
    """(stage, its config, its name in pipeline.json) in run order: the stages of `stages` that are in
    `round_stages` run `rounds` times, each round with round_config; the others run once."""
    rounds = cfg.get("rounds")
    rounds = 1 if rounds is None else rounds
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError("rounds", f"must be an integer >= 1, got {rounds!r}")
    looped = [i for i, s in enumerate(cfg.stages) if rounds > 1 and s in cfg.round_stages]
    if looped and looped != list(range(looped[0], looped[-1] + 1)):
        raise ConfigError("round_stages", f"the repeated stages must follow each other in `stages` "
                                          f"({list(cfg.stages)}); got {list(cfg.round_stages)}")
    if looped and not any(cfg.stages[i] in POLICY_STAGES for i in looped):
        raise ConfigError("round_stages", f"rounds={rounds} repeats {[cfg.stages[i] for i in looped]}, "
                                          f"which train no policy ({list(POLICY_STAGES)}): every round would be the same")
    plan = [(s, cfg, s) for s in cfg.stages[:looped[0]]] if looped else [(s, cfg, s) for s in cfg.stages]
    if looped:
        for round_no in range(1, rounds + 1):
            round_cfg = round_config(cfg, round_no)
            plan += [(cfg.stages[i], round_cfg, f"round_{round_no}/{cfg.stages[i]}") for i in looped]
        plan += [(s, cfg, s) for s in cfg.stages[looped[-1] + 1:]]
    if (cfg.get("evaluate") or {}).get("frontier") and "evaluate" in cfg.stages and "frontier" not in cfg.stages:
        plan.append(("frontier", cfg, "frontier"))   # evaluate.frontier: the snapshots after the final policy
    return plan


def policy_runs(cfg: DictConfig) -> list[tuple[str, Path]]:
    """(name, stage dir) of every run of the evaluated policy stage, in training order (one per round)."""
    policy = evaluated_policy(cfg)
    return [(name, stage_dir(stage_cfg, stage)) for stage, stage_cfg, name in schedule(cfg) if stage == policy]


def record_stage_time(run_dir: str | Path, name: str, seconds: float, shared: bool) -> None:
    """Add one stage's wall time and peak RSS to run_dir/stage_times.json (a rerun keeps the first run's)."""
    path = Path(run_dir) / STAGE_TIMES
    times = json.loads(path.read_text()) if path.exists() else {}
    times[name] = {"seconds": round(seconds, 1), "peak_rss_bytes": peak_rss_bytes(), "shared": shared}
    path.write_text(json.dumps(times, indent=2))


def evaluated_policy(cfg: DictConfig) -> str:
    """The policy stage evaluate compares with SFT: the last in `stages`, else the one given in `artifacts`."""
    listed = [s for s in cfg.stages if s in POLICY_STAGES]
    if listed:
        return listed[-1]
    given = [s for s in POLICY_STAGES if (cfg.get("artifacts") or {}).get(s)]
    return given[-1] if given else "ppo"


def evaluate_mode(cfg: DictConfig) -> str:
    """`evaluate.mode`: gold (the annotator judges policy vs SFT, pipeline_report) or accuracy (a verifiable
    reward grades both on held-out prompts, pipeline_accuracy)."""
    mode = (cfg.get("evaluate") or {}).get("mode", "gold")
    if mode not in EVALUATE_MODES:
        raise ConfigError("evaluate.mode", f"must be one of {list(EVALUATE_MODES)}, got {mode!r}")
    return mode


TRAINING_STAGES = ("pre_sft", "sft", "reward", "reward_absolute", *POLICY_STAGES)


def check_config(cfg: DictConfig) -> None:
    """What a typo can break, checked before any stage runs (not when the stage it is in comes up,
    after minutes of earlier stages): the pipeline's own keys and stage list, and each training
    stage's composed config as `python -m rlhf.train` checks it."""
    validate_pipeline_config(cfg, STAGES)
    unknown = [s for s in cfg.stages if s not in STAGES]
    if unknown:
        raise ConfigError("stages", f"unknown stage(s) {unknown}; allowed: {list(STAGES)}")
    if "evaluate" in cfg.stages:
        evaluate_mode(cfg)
    checked = set()
    for stage, stage_cfg, name in schedule(cfg):
        if stage not in TRAINING_STAGES or stage in checked or artifact_path(stage_cfg, stage).exists():
            continue
        checked.add(stage)
        try:
            validate_config(compose_training_stage(stage_cfg, stage, None))
        except COMPOSE_ERRORS as error:
            raise RLHFError(f"stage {name}: {composition_message(error)} "
                            f"(in {stage}.groups or {stage}.overrides)") from error
        except ConfigError as error:
            raise RLHFError(f"stage {name}: {error} (set in {stage}.groups, {stage}.overrides or common)") from error
        except OmegaConfBaseException as error:   # an override merged onto a typed section it does not fit
            raise RLHFError(f"stage {name}: {merge_message(error)} (set in {stage}.overrides or common)") from error


def run(cfg: DictConfig) -> dict:
    check_config(cfg)
    write_run_info(cfg, cfg.run_dir)
    done = {}
    policy = artifact_path(cfg, "sft")   # what sample draws from and a policy stage starts from
    policy_stage = evaluated_policy(cfg)
    policy_run_dir = stage_dir(cfg, policy_stage)
    for stage, stage_cfg, name in schedule(cfg):
        if stage == "sample" and name != stage:
            done[name.replace("/sample", "/policy")] = policy   # the round's start, recorded in pipeline.json
        product = artifact_path(stage_cfg, stage)
        started = time.monotonic()
        reset_peak_rss()
        if product.exists():
            log.info("stage %s: artifact %s exists, skipped", name, product)
            done[name] = product
            started = None
        elif stage == "pre_sft":
            done[name] = run_training_stage(stage_cfg, stage, None)
        elif stage == "sft":
            # The thesis curriculum (thesis §5.2): stage 2 starts from stage 1's merged weights.
            start = str(artifact_path(cfg, "pre_sft")) if "pre_sft" in cfg.stages else None
            done[name] = run_training_stage(stage_cfg, stage, start)
        elif stage == "sample":
            done[name] = sample_stage(stage_cfg, policy)
        elif stage == "annotate":
            done[name] = annotate_stage(stage_cfg, artifact_path(stage_cfg, "sample"))
        elif stage in ("reward", "reward_absolute"):
            done[name] = run_training_stage(stage_cfg, stage, str(artifact_path(cfg, "sft")))
        elif stage in POLICY_STAGES:
            done[name] = run_training_stage(stage_cfg, stage, str(policy))
        elif stage == "evaluate":
            evaluated = policy if policy_stage in cfg.stages else artifact_path(cfg, policy_stage)
            if evaluate_mode(cfg) == "accuracy":
                done[name] = accuracy_stage(cfg, artifact_path(cfg, "sft"), evaluated, stage_dir(cfg, "evaluate"),
                                            policy_stage)
            else:
                done[name] = evaluate_stage(cfg, artifact_path(cfg, "sft"), evaluated, policy_run_dir,
                                            artifact_path(cfg, "reward"), stage_dir(cfg, "evaluate"), policy_stage)
        elif stage == "frontier":
            done[name] = frontier_stage(cfg, artifact_path(cfg, "sft"), policy_runs(cfg), stage_dir(cfg, "evaluate"),
                                        artifact_path(cfg, "reward"), artifact_path(cfg, "frontier"), policy_stage,
                                        [artifact_path(c, "sample") for s, c, _ in schedule(cfg) if s == "sample"])
        if started is not None:
            record_stage_time(cfg.run_dir, name, time.monotonic() - started,
                              stage in (stage_cfg.get("shared_stages") or []))
        if stage == "sft" or stage in POLICY_STAGES:
            policy = done[name]
            if stage == policy_stage:
                policy_run_dir = stage_dir(stage_cfg, stage)
    summary = {stage: str(path) for stage, path in done.items()}
    (Path(cfg.run_dir) / "pipeline.json").write_text(json.dumps(summary, indent=2))
    final = stage_dir(cfg, "evaluate") / "summary.json"
    if final.exists():
        result = json.loads(final.read_text())
        headline = accuracy_headline_metrics if result.get("mode") == "accuracy" else headline_metrics
        write_final_metrics(cfg.run_dir, headline(result))
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="pipeline")
@exit_on_error
def hydra_main(cfg: DictConfig) -> None:
    run(cfg)


def main() -> None:
    """`python -m rlhf.pipeline` and the `rlhf-pipeline` script: bad config or data exits 2 with one line."""
    run_hydra(hydra_main)


if __name__ == "__main__":
    main()
