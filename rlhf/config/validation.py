"""Check the composed config before anything heavy runs, so a typo costs seconds, not a model load.

Hydra already rejects overrides of keys that do not exist; this catches what it lets through: keys
added with `+`, typos inside YAML files (experiments, new groups), values of the wrong type and
values out of range (issue 8 §3). Every `_target_` node is checked against its target's signature;
the plain dicts the modules take (`model`, `peft`, `*optim`) against the keys the code reads.
The first problem raises one ConfigError naming the full key path and what would be allowed.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
import typing
from collections.abc import Callable
from pathlib import Path
from types import NoneType, UnionType

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlhf.core.errors import ConfigError

HYDRA_KEYS = {"_target_", "_convert_", "_recursive_", "_partial_", "_args_"}
TRAIN_YAML = Path(__file__).resolve().parents[1] / "configs" / "train.yaml"
# Top-level keys that config groups place at the root (`@_global_`) rather than train.yaml itself.
GLOBAL_GROUP_KEYS = {"optimized_metric", "reward", "hydra"}
OPTIM_KEYS = {"lr", "betas", "eps", "weight_decay", "schedule", "warmup_ratio", "grad_clip"}
DICT_SCHEMAS = {  # parameter name -> keys the code reads from that plain dict (rlhf/models.py, lora.py, optim.py)
    "model": {"source", "tokenizer", "dtype", "cache_dir", "trust_remote_code", "tiny", "fsdp_param_dtype"},
    "peft": {"enabled", "r", "alpha", "dropout", "target_modules", "top_layers"},
    "optim": OPTIM_KEYS, "actor_optim": OPTIM_KEYS, "critic_optim": OPTIM_KEYS,
}
CHOICES = {
    "dtype": ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16"),
    "schedule": ("cosine", "linear", "constant"),
}


def _number(low: float | None = None, high: float | None = None, low_open=False, high_open=False,
            integer=False, nullable=True) -> tuple[Callable[[object], bool], str]:
    def check(value) -> bool:
        if value is None:
            return nullable
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if low is not None and (value <= low if low_open else value < low):
            return False
        return not (high is not None and (value >= high if high_open else value > high))

    kind = "an integer" if integer else "a number"
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high}")
    text = kind + (" " + " and ".join(bounds) if bounds else "") + (" (or null)" if nullable else "")
    return check, text


POSITIVE_INT = _number(1, integer=True)
FRACTION = _number(0, 1, high_open=True)
UNIT = _number(0, 1)
# key name (or "parent.name") -> (check, allowed values in words); applied wherever the key appears.
RANGES = {
    "lr": _number(0, low_open=True, nullable=False),
    "eps": _number(0, low_open=True),
    "weight_decay": _number(0),
    "warmup_ratio": UNIT,
    "dropout": FRACTION,
    "val_fraction": FRACTION,
    "gamma": UNIT,
    "lam": UNIT,
    "top_p": _number(0, 1, low_open=True),
    "top_k": _number(0, integer=True),
    "temperature": _number(0, low_open=True),
    "clip_eps": _number(0, low_open=True),
    "clip_value": _number(0, low_open=True),
    "grad_clip": _number(0, low_open=True),
    "gradient_clip_val": _number(0),
    "init_beta": _number(0),
    "vf_coef": _number(0),
    "entropy_coef": _number(0),
    "ptx_coef": _number(0),
    "batch_size": POSITIVE_INT,
    "eval_batch_size": POSITIVE_INT,
    "minibatch_size": POSITIVE_INT,
    "micro_batch_size": POSITIVE_INT,
    "max_length": POSITIVE_INT,
    "max_new_tokens": POSITIVE_INT,
    "max_prompt_tokens": POSITIVE_INT,
    "n_samples_per_prompt": POSITIVE_INT,
    "epochs": POSITIVE_INT,
    "accumulate_grad_batches": POSITIVE_INT,
    "max_consecutive": POSITIVE_INT,
    "max_nonfinite_in_a_row": POSITIVE_INT,
    "limit": POSITIVE_INT,
    "num_workers": _number(0, integer=True),
    "max_steps": _number(-1, integer=True, nullable=False),
    "max_epochs": _number(-1, integer=True),
    "seed": _number(integer=True, nullable=False),
    "peft.r": POSITIVE_INT,
    "peft.alpha": _number(0, low_open=True),
}


def _betas(value) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all(RANGES["dropout"][0](b) and b is not None for b in value))


SPECIAL = {"betas": (_betas, "a list of two numbers in [0, 1)")}


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


SIMPLE = {bool: "bool", int: "int", float: "float", str: "str", dict: "dict", list: "list", tuple: "list", NoneType: "null"}


def _simple_types(annotation) -> set | None:
    """The builtin types an annotation allows, or None when it names anything this check cannot judge."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, UnionType):
        parts = [_simple_types(a) for a in typing.get_args(annotation)]
        return None if any(p is None for p in parts) else set().union(*parts)
    base = origin or annotation
    if base is typing.Any:
        return None
    return {base} if base in SIMPLE else None


def _type_ok(value, allowed: set) -> bool:
    if value is None:
        return NoneType in allowed
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int):
        return int in allowed or float in allowed
    if isinstance(value, list):
        return list in allowed or tuple in allowed
    return any(isinstance(value, t) for t in allowed if t is not NoneType)


def _unknown(path: str, key: str, allowed, what: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"{path}.{key}" if path else key,
                       f"unknown key for {what}{hint}; allowed: {sorted(allowed)}")


def _check_target(node: DictConfig, path: str) -> None:
    target_name = node["_target_"]
    target = _import_target(path, target_name)
    params, open_ended, hints = _parameters(target)
    for key in node.keys():
        if key in HYDRA_KEYS:
            continue
        if key not in params:
            if not open_ended:
                raise _unknown(path, key, params, target_name)
            continue
        allowed = _simple_types(hints[key]) if key in hints else None
        ok, value = _resolved(node, key)
        if allowed and ok and not OmegaConf.is_missing(node, key) and not _type_ok(value, allowed):
            names = sorted({SIMPLE[t] for t in allowed})
            raise ConfigError(f"{path}.{key}", f"{target_name} expects {' or '.join(names)}, "
                                               f"got {type(value).__name__} {value!r}")
        if key in DICT_SCHEMAS and ok and isinstance(value, dict):
            _check_keys(f"{path}.{key}", key, value)


def _check_keys(path: str, schema: str, keys) -> None:
    for sub in keys:
        if sub not in DICT_SCHEMAS[schema]:
            raise _unknown(path, str(sub), DICT_SCHEMAS[schema], f"the '{schema}' settings")


def _check_value(path: str, key: str, value) -> None:
    parent = path.rsplit(".", 2)[-2] if path.count(".") else ""
    rule = RANGES.get(f"{parent}.{key}") or RANGES.get(key) or SPECIAL.get(key)
    if rule and not rule[0](value):
        raise ConfigError(path, f"must be {rule[1]}, got {value!r}")
    if key in CHOICES and value is not None and value not in CHOICES[key]:
        raise ConfigError(path, f"'{value}' is not allowed; allowed: {list(CHOICES[key])}")


def _walk(node, path: str) -> None:
    if isinstance(node, DictConfig) and "_target_" in node:
        _check_target(node, path)
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        child_path = f"{path}.{key}" if path else str(key)
        if OmegaConf.is_missing(node, key):
            raise ConfigError(child_path, "is required but not set (???): pass it on the command line, "
                                          f"e.g. {child_path}=...")
        if OmegaConf.is_interpolation(node, key):
            # checked where it points to; only its resolved value's range is checked here
            ok, value = _resolved(node, key)
            if ok and not isinstance(value, (dict, list)):
                _check_value(child_path, str(key), value)
            continue
        child = node._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_none():
            if key in SPECIAL:
                _check_value(child_path, str(key), _plain(child))
            if key in DICT_SCHEMAS and isinstance(child, DictConfig) and "_target_" not in child:
                _check_keys(child_path, str(key), child.keys())
            _walk(child, child_path)
        elif not isinstance(child, (DictConfig, ListConfig)):
            _check_value(child_path, str(key), child._value())


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
            raise _unknown("", str(key), allowed, "the top level")
    for key in cfg.keys():
        if key == "hydra":
            continue
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(str(key), f"is required but not set (???): pass {key}=...")
        child = cfg._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)) and not OmegaConf.is_interpolation(cfg, key):
            if key in DICT_SCHEMAS and isinstance(child, DictConfig) and not child._is_none():
                _check_keys(str(key), str(key), child.keys())
            if not child._is_none():
                _walk(child, str(key))
        else:
            ok, value = _resolved(cfg, key)
            if ok:
                _check_value(str(key), str(key), value)
