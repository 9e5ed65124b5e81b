"""Check the composed config before anything heavy runs, so a typo costs seconds, not a model load.

Typed sections (dataclasses in rlhf/core/config.py and each stage's config.py) are the schema of
their YAML: Hydra already rejects their unknown keys and wrong types when it composes. This module
catches what composition lets through: keys added with `+` (Hydra adds them even to a typed node),
values out of range (each field's rule lives in its dataclass), and the `_target_` nodes that are
not typed (trainer, callbacks, loggers), checked against their target's signature; a parameter
annotated with a dataclass is checked as that section. What no single schema can say (the ranges of
Lightning's Trainer arguments, which stage fits which data) is written here. The first problem
raises one ConfigError naming the full key path and what would be allowed.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlhf.config.fit import check_fit
from rlhf.core.errors import ConfigError
from rlhf.core.schema import (Check, check_section, check_value, dataclass_in, simple_types, type_names, type_ok,
                              unknown_key)

HYDRA_KEYS = {"_target_", "_convert_", "_recursive_", "_partial_", "_args_"}
TRAIN_YAML = Path(__file__).resolve().parents[2] / "configs" / "train.yaml"
# Top-level keys that config groups place at the root (`@_global_`) rather than train.yaml itself.
GLOBAL_GROUP_KEYS = {"optimized_metric", "reward_fn", "hydra"}
# Lightning Trainer arguments (no schema of ours): key -> rule, wherever the key appears untyped.
UNTYPED_RANGES = {
    "max_steps": Check(low=-1), "max_epochs": Check(low=-1), "accumulate_grad_batches": Check(low=1),
    "gradient_clip_val": Check(low=0), "devices": Check(low=1), "num_nodes": Check(low=1),
    "limit_val_batches": Check(low=0), "val_check_interval": Check(low=0, low_open=True),
    "log_every_n_steps": Check(low=1), "seed": Check(),
}

NOT_NULL = {"max_steps", "seed"}
# Groups every run reads: removing one (`~data`) or setting it to null leaves nothing to build.
REQUIRED_GROUPS = ("paths", "model", "peft", "stage", "data", "trainer")
INTEGER_KEYS = {"max_steps", "max_epochs", "accumulate_grad_batches", "devices", "num_nodes", "log_every_n_steps", "seed"}


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def _resolved(node, key):
    """(ok, value): ok is False when the value cannot be resolved here (e.g. ${hydra:...} outside a run)."""
    try:
        return True, _plain(node[key])
    except OmegaConfBaseException:
        return False, None


def _import_target(path: str, target: str):
    module_name, _, attr = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"{path}._target_", f"cannot import '{target}' ({err})") from err


def _parameters(target) -> tuple[dict[str, inspect.Parameter], bool, dict]:
    function = target.__init__ if inspect.isclass(target) else target
    params = dict(inspect.signature(function).parameters)
    params.pop("self", None)
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    try:
        hints = typing.get_type_hints(function)
    except Exception:
        hints = {}
    named = {k: p for k, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return named, open_ended, hints


def _check_typed(node: DictConfig, cls, path: str) -> None:
    """A node Hydra merged onto dataclass `cls`: no extra key (a `+` override), each value in range."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in node.keys():
        key = str(key)
        if key in HYDRA_KEYS:
            continue
        if key not in names:
            raise unknown_key(path, key, names, cls.__name__)
        child_path = f"{path}.{key}" if path else key
        if OmegaConf.is_missing(node, key):
            raise ConfigError(child_path, f"is required but not set (???): pass it on the command line, e.g. {child_path}=...")
        ok, value = _resolved(node, key)
        if ok:
            check_value(cls, key, value, child_path)


def _check_target(node: DictConfig, path: str) -> None:
    target_name = node["_target_"]
    target = _import_target(path, target_name)
    params, open_ended, hints = _parameters(target)
    for key in node.keys():
        if key in HYDRA_KEYS:
            continue
        if key not in params:
            if not open_ended:
                raise unknown_key(path, key, params, target_name)
            continue
        ok, value = _resolved(node, key)
        if not ok or OmegaConf.is_missing(node, key):
            continue
        section = dataclass_in(hints.get(key))
        if section is not None and isinstance(value, dict):
            check_section(section, value, f"{path}.{key}")
            continue
        allowed = simple_types(hints[key]) if key in hints else None
        if allowed and not type_ok(value, allowed):
            raise ConfigError(f"{path}.{key}", f"{target_name} expects {type_names(allowed)}, "
                                               f"got {type(value).__name__} {value!r}")


def _check_untyped_value(path: str, key: str, value) -> None:
    rule = UNTYPED_RANGES.get(key)
    if rule is None:
        return
    if value is None and key not in NOT_NULL:
        return
    integer = key in INTEGER_KEYS
    if (value is None or isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
            or not rule.ok(value)):
        raise ConfigError(path, f"must be {rule.describe(integer, key not in NOT_NULL)}, got {value!r}")


def _walk(node, path: str) -> None:
    if isinstance(node, DictConfig):
        cls = OmegaConf.get_type(node)
        if dataclasses.is_dataclass(cls):
            _check_typed(node, cls, path)
            return
        if "_target_" in node:
            _check_target(node, path)
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        child_path = f"{path}.{key}" if path else str(key)
        if OmegaConf.is_missing(node, key):
            raise ConfigError(child_path, "is required but not set (???): pass it on the command line, "
                                          f"e.g. {child_path}=...")
        if OmegaConf.is_interpolation(node, key):
            ok, value = _resolved(node, key)   # checked where it points to; only its range here
            if ok and not isinstance(value, (dict, list)):
                _check_untyped_value(child_path, str(key), value)
            continue
        child = node._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_none():
            _walk(child, child_path)
        elif not isinstance(child, (DictConfig, ListConfig)):
            _check_untyped_value(child_path, str(key), child._value())


def allowed_top_level_keys(train_yaml: Path = TRAIN_YAML) -> set[str]:
    entry = OmegaConf.load(train_yaml)
    groups = set()
    for item in entry.get("defaults", []):
        name = next(iter(item)) if isinstance(item, DictConfig) else str(item)
        groups.add(name.split("@")[0].lstrip("/").removeprefix("override "))
    return (set(entry.keys()) - {"defaults"}) | (groups - {"_self_"}) | GLOBAL_GROUP_KEYS


def validate_config(cfg: DictConfig, top_level: set[str] | None = None) -> None:
    """Raise ConfigError for the first unknown key, wrong type, out-of-range value or unset `???`."""
    allowed = top_level if top_level is not None else allowed_top_level_keys()
    for key in cfg.keys():
        if key not in allowed:
            raise unknown_key("", str(key), allowed, "the top level")
    for key in REQUIRED_GROUPS if top_level is None else ():
        if key not in cfg or cfg._get_node(key)._is_none():
            raise ConfigError(key, f"is required: pick an option of the '{key}' group ({key}=...), "
                                   "not remove it")
    for key in cfg.keys():
        if key == "hydra":
            continue
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(str(key), f"is required but not set (???): pass {key}=...")
        child = cfg._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)) and not OmegaConf.is_interpolation(cfg, key):
            if not child._is_none():
                _walk(child, str(key))
        else:
            ok, value = _resolved(cfg, key)
            if ok:
                _check_untyped_value(str(key), str(key), value)
    check_fit(cfg)
