"""Hydra callback of experiment=compare: before the first job, every arm of the sweep must exist and have the
same budget (rlhf.compare.budget); after the last, the comparison report (rlhf.compare.report).

Hydra turns an exception in a callback into a warning, so a refusal ends the process itself (status 2, one line
on stderr), before any job starts and any model loads.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import MissingConfigException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rlhf.compare.budget import arm_budget, check_equal
from rlhf.core.errors import ConfigError, RLHFError


def sweep_values(params: dict, task_overrides: list[str]) -> dict[str, list[str]]:
    """key -> its values in the sweep: hydra.sweeper.params first, then the command line (which wins)."""
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()] + list(task_overrides))
    values: dict[str, list[str]] = {}
    for override in parsed:
        key = override.get_key_element()
        values[key] = (list(override.sweep_string_iterator()) if override.is_sweep_override()
                       else [override.get_value_element_as_str()])
    return values


def known_arms() -> list[str]:
    return sorted(GlobalHydra.instance().config_loader().get_group_options("arm"))


def compose_arm(arm: str, fixed: list[str], out_dir: Path) -> DictConfig:
    """The pipeline config of one arm (the first value of every other swept key); an unknown arm lists the known."""
    try:
        return compose("pipeline", overrides=[*fixed, f"arm={arm}", f"paths.output_dir={out_dir}"])
    except MissingConfigException as error:
        if f"arm/{arm}" not in str(error):
            raise
        raise ConfigError("arm", f"unknown arm {arm!r}; the known arms are {known_arms()} (configs/arm/)") from None


def check_sweep(config: DictConfig) -> list:
    """Compose every arm of the sweep described by `config` and refuse unequal or uncountable budgets."""
    values = sweep_values(dict(config.hydra.sweeper.params or {}), list(config.hydra.overrides.task))
    arms = values.pop("arm", [])
    if not arms:
        raise ConfigError("arm", f"the comparison names no arm; pick some of {known_arms()}")
    fixed = [f"{key}={options[0]}" for key, options in values.items()]
    sweep_dir = Path(config.hydra.sweep.dir)
    budgets = [arm_budget(arm, compose_arm(arm, fixed, sweep_dir / arm)) for arm in arms]
    check_equal(budgets)
    return budgets


class CompareSweep(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            check_sweep(config)
        except RLHFError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from rlhf.compare.report import write_compare_report

        write_compare_report(config.hydra.sweep.dir)
