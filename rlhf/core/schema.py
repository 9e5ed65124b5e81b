"""Typed config sections: dataclass fields carry each default, its allowed range and (in the
attribute docstring under the field) its source, so a key has one home.

Hydra merges the YAML files onto these dataclasses (they are registered in its ConfigStore, see
rlhf/config/store.py), which rejects unknown keys and wrong types at composition. What Hydra lets
through (keys added with `+`, values out of range, plain dicts handed to a module in a test) is
caught by `check_section`, the one checker both the start-up validation and `as_config` use.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import NoneType, UnionType
from typing import Any

from rlhf.core.errors import ConfigError

REQUIRED = "???"
"""OmegaConf's missing value: a field that has no default must be set (a YAML value of ??? merged
onto a default would keep the default, so required fields default to this)."""


@dataclass(frozen=True)
class Check:
    """A value rule: numeric bounds and/or a set of allowed values (None passes when allowed)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    length: int | None = None

    def ok(self, value) -> bool:
        if value is None:
            return True
        if self.choices is not None:
            return value in self.choices
        if self.length is not None:
            return (isinstance(value, (list, tuple)) and len(value) == self.length
                    and all(self._in_bounds(v) for v in value))
        return self._in_bounds(value)

    def _in_bounds(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return self.low is None and self.high is None
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self, integer: bool = False, nullable: bool = False) -> str:
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high}")
        text = " and ".join(bounds)
        if self.length:
            low = "(" if self.low_open else "["
            high = ")" if self.high_open else "]"
            return f"a list of {self.length} numbers in {low}{self.low}, {self.high}{high}"
        kind = "an integer" if integer else "a number"
        return f"{kind} {text}".strip() + (" (or null)" if nullable else "")


def setting(default: Any = dataclasses.MISSING, *, factory=None, low=None, high=None, low_open=False,
            high_open=False, choices=None, length=None):
    """A dataclass field with its value rule attached (metadata["check"])."""
    check = Check(low, high, low_open, high_open, tuple(choices) if choices is not None else None, length)
    if factory is not None:
        return field(default_factory=factory, metadata={"check": check})
    return field(default=default, metadata={"check": check})


class OneOf:
    """A section that is one of several dataclasses, told apart by the value of its `tag` key
    (a reward-model loss by its `name`)."""

    def __init__(self, options: Mapping[str, type], tag: str = "name"):
        self.options, self.tag = dict(options), tag

    def pick(self, value: Mapping, path: str) -> type:
        name = value.get(self.tag)
        if name not in self.options:
            raise ConfigError(f"{path}.{self.tag}", f"unknown {self.tag} {name!r}; allowed: {sorted(self.options)}")
        return self.options[name]


def section(schema, default: Any = None, *, many: bool = False):
    """A field OmegaConf leaves untyped (annotate it `Any`, or `list[Any]` with many=True) whose
    value, or each item of its list, is still checked and built as `schema` (a dataclass or a OneOf).

    For the nodes where an OmegaConf type would change what the YAML means: a `???` in an item of
    a typed list is merged onto the item's default and lost, a mapping given on the command line
    onto a typed null crashes OmegaConf 2.3, and a node of several kinds has no OmegaConf type.
    """
    metadata = {"schema": schema, "many": many}
    if many:
        return field(default_factory=list, metadata=metadata)
    return field(default=default, metadata=metadata)


def _is_instance(value) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _schema_entry(schema, value, path: str) -> type:
    """The dataclass one entry of a `section` field is checked against (its `???` values first)."""
    what = schema.__name__ if dataclasses.is_dataclass(schema) else f"one of {sorted(schema.options)}"
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"expects a mapping of {what} settings, got {type(value).__name__} {value!r}")
    for key, item in value.items():
        if isinstance(item, str) and item == REQUIRED:
            raise ConfigError(f"{path}.{key}", f"is required but not set (???): pass it on the command line, "
                                               f"e.g. {path}.{key}=...")
    return schema.pick(value, path) if isinstance(schema, OneOf) else schema


def _section_entries(metadata, value, path: str) -> list[tuple]:
    """(entry, its path) of a `section` field's value: the list's items, or the value itself."""
    if not metadata["many"]:
        return [(value, path)]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(path, f"expects a list, got {type(value).__name__} {value!r}")
    return [(item, f"{path}.{i}") for i, item in enumerate(value)]


def _check_section_field(metadata, value, path: str) -> None:
    if value is None:
        return
    for entry, where in _section_entries(metadata, value, path):
        if not _is_instance(entry):
            check_section(_schema_entry(metadata["schema"], entry, where), entry, where)


def _build_section_field(metadata, value, path: str):
    if value is None:
        return None
    built = [entry if _is_instance(entry) else as_config(_schema_entry(metadata["schema"], entry, where), entry, where)
             for entry, where in _section_entries(metadata, value, path)]
    return built if metadata["many"] else built[0]


POSITIVE = {"low": 1}
FRACTION = {"low": 0, "high": 1, "high_open": True}
UNIT = {"low": 0, "high": 1}
ABOVE_ZERO = {"low": 0, "low_open": True}
NON_NEGATIVE = {"low": 0}

_SIMPLE = {bool: "bool", int: "int", float: "float", str: "str", dict: "dict", list: "list", tuple: "list",
           NoneType: "null"}


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def dataclass_in(annotation):
    """The dataclass an annotation names (X, X | None), else None."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, UnionType):
        found = [a for a in typing.get_args(annotation) if dataclasses.is_dataclass(a)]
        return found[0] if len(found) == 1 else None
    return None


def simple_types(annotation) -> set | None:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, UnionType):
        parts = [simple_types(a) for a in typing.get_args(annotation)]
        return None if any(p is None for p in parts) else set().union(*parts)
    if origin is typing.Literal:
        return {type(a) for a in typing.get_args(annotation)}
    base = origin or annotation
    return {base} if base in _SIMPLE else None


def type_ok(value, allowed: set) -> bool:
    if value is None:
        return NoneType in allowed
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int):
        return int in allowed or float in allowed
    if isinstance(value, (list, tuple)):
        return list in allowed or tuple in allowed
    return any(isinstance(value, t) for t in allowed if t is not NoneType)


def type_names(allowed: set) -> str:
    return " or ".join(sorted({_SIMPLE[t] for t in allowed}))


def unknown_key(path: str, key: str, allowed, what: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"{path}.{key}" if path else key, f"unknown key for {what}{hint}; allowed: {sorted(allowed)}")


def field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def check_value(cls, name: str, value, path: str) -> None:
    """Type and range of one field's (resolved, plain) value."""
    spec = {f.name: f for f in dataclasses.fields(cls)}[name]
    if "schema" in spec.metadata:
        _check_section_field(spec.metadata, value, path)
        return
    annotation = _hints(cls)[name]
    nested = dataclass_in(annotation)
    if nested is not None and isinstance(value, Mapping):
        check_section(nested, value, path)
        return
    allowed = simple_types(annotation)
    if allowed and not type_ok(value, allowed):
        raise ConfigError(path, f"expects {type_names(allowed)}, got {type(value).__name__} {value!r}")
    check = spec.metadata.get("check")
    if check is not None and not check.ok(value):
        if check.choices is not None:
            raise ConfigError(path, f"{value!r} is not allowed; allowed: {list(check.choices)}")
        integer = bool(allowed) and allowed <= {int, NoneType}
        raise ConfigError(path, f"must be {check.describe(integer, NoneType in (allowed or set()))}, got {value!r}")


def check_section(cls, values: Mapping, path: str) -> None:
    """Every key of `values` is a field of `cls`, of its type and in its range (recursively)."""
    names = field_names(cls)
    for key, value in values.items():
        if key in ("_target_", "_convert_", "_recursive_", "_partial_"):
            continue
        if key not in names:
            raise unknown_key(path, str(key), names, cls.__name__)
        check_value(cls, key, value, f"{path}.{key}" if path else str(key))


def as_config(cls, value, path: str):
    """`value` as an instance of `cls`: instances pass through, mappings are checked and built
    (nested sections too), None gives the defaults."""
    if isinstance(value, cls):
        return value
    if value is None:
        return cls()
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"expects a mapping of {cls.__name__} settings, got {type(value).__name__}")
    check_section(cls, value, path)
    for spec in dataclasses.fields(cls):
        if spec.default is REQUIRED and value.get(spec.name, REQUIRED) == REQUIRED:
            raise ConfigError(f"{path}.{spec.name}", f"is required but not set (???): pass {path}.{spec.name}=...")
    hints = _hints(cls)
    specs = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, item in value.items():
        if key.startswith("_"):
            continue
        if "schema" in specs[key].metadata:
            kwargs[key] = _build_section_field(specs[key].metadata, item, f"{path}.{key}")
            continue
        nested = dataclass_in(hints[key])
        kwargs[key] = as_config(nested, item, f"{path}.{key}") if nested is not None and isinstance(item, Mapping) else item
    return cls(**kwargs)


def to_dict(section) -> dict:
    """A section as plain data (for save_hyperparameters, logs and checkpoints)."""
    return dataclasses.asdict(section)


def plain_data(value):
    """A section handed over as a dataclass instance, an OmegaConf node (stages built with
    _recursive_=False receive nodes) or a mapping, as plain data."""
    if value is None or isinstance(value, (dict, list, str, int, float, bool)):
        return value
    if hasattr(value, "__dataclass_fields__"):
        return to_dict(value)
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return dict(value)
