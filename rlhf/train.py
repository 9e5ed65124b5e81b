"""Hydra entry point: compose -> instantiate -> trainer.fit -> export. No logic of its own.

    python -m rlhf.train stage=sft model=smollm2-135m data=alpaca trainer.max_steps=100
    python -m rlhf.train -m stage.module.optim.lr=5e-5,1e-4      # a sweep
"""

from __future__ import annotations

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rlhf.config_validation import validate_config
from rlhf.run_info import write_run_info
from rlhf.sweep_summary import write_final_metrics


def instantiate_group(group: DictConfig | None) -> list:
    return [instantiate(node) for node in (group or {}).values() if node is not None and "_target_" in node]


def run(cfg: DictConfig) -> dict:
    validate_config(cfg)   # every key checked before any model loads
    L.seed_everything(cfg.seed, workers=True)
    write_run_info(cfg, cfg.paths.output_dir)
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.stage.module)
    # A stage may pin trainer keys it cannot work without (PPO: no automatic gradient clipping).
    trainer_cfg = OmegaConf.merge(cfg.trainer, cfg.stage.get("trainer") or {})
    trainer = instantiate(trainer_cfg, callbacks=instantiate_group(cfg.get("callbacks")),
                          logger=instantiate_group(cfg.get("logger")) or False)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    stopped_by_signal = any(getattr(c, "saved_path", None) for c in trainer.callbacks)
    if cfg.get("export_dir") and not stopped_by_signal:   # a stopped run resumes; it has no final model yet
        module.export(cfg.export_dir)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    if trainer.is_global_zero:
        write_final_metrics(cfg.paths.output_dir, metrics)
    return metrics


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = run(cfg)
    objective = cfg.get("optimized_metric")
    return metrics.get(objective) if objective else None


if __name__ == "__main__":
    main()
