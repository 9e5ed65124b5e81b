"""Build and fit a stage exactly as `python -m rlhf.train` would, from the same Hydra configs.

The benchmark therefore measures what a user runs (same data module, module, trainer config and
plugins), with only logging, checkpointing and the progress bar switched off, and a step clock added.
"""

from __future__ import annotations

import tempfile

import lightning as L
from hydra import compose, initialize_config_dir

import rlhf.config.store  # noqa: F401  (the config schemas Hydra composes onto)
from hydra.utils import instantiate
from omegaconf import OmegaConf

from harness import REPO_ROOT
from step_timers import LightningStepTimer

QUIET = ["logger=none", "callbacks=none", "trainer.enable_progress_bar=false", "+trainer.enable_checkpointing=false",
         "+trainer.enable_model_summary=false", "trainer.log_every_n_steps=1000000"]
GPU = ["trainer=gpu", "strategy=fsdp2", "trainer.devices=1", "trainer.accumulate_grad_batches=1",
       "model.dtype=bfloat16"]


def compose_train_config(overrides: list[str], output_dir: str):
    with initialize_config_dir(config_dir=str(REPO_ROOT / "configs"), version_base="1.3"):
        return compose(config_name="train", overrides=[f"paths.root_dir={REPO_ROOT}", f"paths.output_dir={output_dir}",
                                                       *QUIET, *overrides])


def fit_stage(overrides: list[str], seed: int = 0, callbacks: list | None = None):
    """Fit the composed stage; returns (module, trainer, per-step durations in s)."""
    output_dir = tempfile.mkdtemp(prefix="rlhf-bench-")
    cfg = compose_train_config(overrides, output_dir)
    L.seed_everything(seed, workers=True, verbose=False)
    module = instantiate(cfg.stage.module)
    datamodule = instantiate(cfg.data, tokenizer=module.tokenizer)
    timer = LightningStepTimer()
    trainer_cfg = OmegaConf.merge(cfg.trainer, cfg.stage.get("trainer") or {})
    trainer = instantiate(trainer_cfg, callbacks=[timer, *(callbacks or [])], logger=False)
    trainer.fit(module, datamodule=datamodule)
    return module, trainer, timer.durations
