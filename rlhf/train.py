"""Hydra entry point: compose -> instantiate -> trainer.fit -> export. No logic of its own.

    python -m rlhf.train stage=sft model=smollm2-135m data=alpaca trainer.max_steps=100
    python -m rlhf.train -m stage.module.optim.lr=5e-5,1e-4      # a sweep
    python -m rlhf.train experiment=sft_two_stage               # a curriculum: stages fit in order
"""

from __future__ import annotations

from pathlib import Path

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import rlhf.config.store  # noqa: F401  (registers the config schemas before Hydra composes)
from rlhf.config.entry_point import CONFIG_DIR, run_hydra
from rlhf.config.validation import validate_config
from rlhf.core.errors import exit_on_error
from rlhf.core.lora import apply_lora, is_lora
from rlhf.core.run_info import write_run_info
from rlhf.sweep_summary import write_final_metrics

STAGE_OVERRIDES = ("data", "trainer")   # what one curriculum entry may change


def instantiate_group(group: DictConfig | None) -> list:
    return [instantiate(node) for node in (group or {}).values() if node is not None and "_target_" in node]


def fit(cfg: DictConfig, module, ckpt_path=None):
    # The data is tokenized with the stage module's own tokenizer, never a second copy of it.
    datamodule = instantiate(cfg.data, tokenizer=module.tokenizer)
    # A stage may pin trainer keys it cannot work without (PPO: no automatic gradient clipping).
    trainer_cfg = OmegaConf.merge(cfg.trainer, cfg.stage.get("trainer") or {})
    trainer = instantiate(trainer_cfg, callbacks=instantiate_group(cfg.get("callbacks")),
                          logger=instantiate_group(cfg.get("logger")) or False)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer


def end_wandb_runs(trainer) -> None:
    """End the run's wandb run, so the next run in this process (a sweep job, a pipeline stage) gets its own:
    Lightning's WandbLogger otherwise logs into the run still open."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()


def stopped_by_signal(trainer) -> bool:
    """A run stopped by SIGTERM/SIGINT has a checkpoint to resume from, not a final model."""
    return any(getattr(c, "saved_path", None) for c in trainer.callbacks)


def run_curriculum(cfg: DictConfig, module):
    """Stages in order on one module (docs/methods.md §2.3): each gets its own data/trainer overrides and a
    fresh optimizer and schedule; the weights (and LoRA adapter) carry over."""
    names = list(cfg.curriculum)
    trainer = None
    for i, name in enumerate(names):
        spec = cfg.curriculum[name]
        if spec.get("adapter", "continue") == "merge_then_new" and is_lora(module.model):
            module.model = apply_lora(module.model.merge_and_unload(), module.peft_cfg)
        stage_cfg = OmegaConf.merge(cfg, {k: spec[k] for k in STAGE_OVERRIDES if k in spec})
        trainer = fit(stage_cfg, module, cfg.get("ckpt_path") if i == 0 else None)
        if stopped_by_signal(trainer):
            break
        last = i == len(names) - 1
        if cfg.get("export_dir"):
            module.export(cfg.export_dir if last else Path(cfg.paths.output_dir) / f"model_{name}")
    return trainer


def run(cfg: DictConfig) -> dict:
    validate_config(cfg)   # every key checked before any model loads
    L.seed_everything(cfg.seed, workers=True)
    write_run_info(cfg, cfg.paths.output_dir)
    module = instantiate(cfg.stage.module)
    if cfg.get("curriculum"):
        trainer = run_curriculum(cfg, module)
    else:
        trainer = fit(cfg, module, cfg.get("ckpt_path"))
        if cfg.get("export_dir") and not stopped_by_signal(trainer):
            module.export(cfg.export_dir)
    end_wandb_runs(trainer)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    if trainer.is_global_zero:
        write_final_metrics(cfg.paths.output_dir, metrics)
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@exit_on_error
def hydra_main(cfg: DictConfig) -> float | None:
    metrics = run(cfg)
    objective = cfg.get("optimized_metric")
    return metrics.get(objective) if objective else None


def main() -> None:
    """`python -m rlhf.train` and the `rlhf-train` script: bad config or data exits 2 with one line."""
    run_hydra(hydra_main)


if __name__ == "__main__":
    main()
