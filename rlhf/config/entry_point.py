"""Running a `@hydra.main` entry point so that a config Hydra cannot compose ends like every other
bad input: one line naming the key and what was expected, exit status 2.

Hydra itself prints such errors over several lines (message, cause, a hint about HYDRA_FULL_ERROR)
and exits 1; a key a typed section lacks, a value of the wrong type, a group option that does not
exist or an override that does not parse are all stopped there, before `validate_config` runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.errors import ConfigCompositionException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")
"""Absolute, so the entry points compose the same configs from `python -m`, the console scripts
and a test calling `main()` (a relative config_path is read as a Python package there)."""

COMPOSE_ERRORS = (ConfigCompositionException, OverrideParseException)


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _allowed_keys(object_type) -> list[str]:
    return [f.name for f in dataclasses.fields(object_type)] if dataclasses.is_dataclass(object_type) else []


def _unknown_key(key: str, cause: OmegaConfBaseException) -> str:
    name = key.rsplit(".", 1)[-1]
    allowed = _allowed_keys(getattr(cause, "object_type", None))
    if not allowed:
        return (f"config key '{key}': not a key of this config (check the spelling; `+{key}=...` adds a key "
                "Hydra does not know, and validation then says whether the run accepts it)")
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"config key '{key}': unknown key for {cause.object_type.__name__}{hint}; allowed: {sorted(allowed)}"


def merge_message(error: OmegaConfBaseException) -> str:
    """One line for an error OmegaConf raised merging a value into a typed config: the key and what is allowed."""
    key = getattr(error, "full_key", None)
    key = re.sub(r"\[(\d+)\]", r".\1", key) if key else key   # data.sources[0].path -> data.sources.0.path
    if not key:
        return f"config: {_first_line(error)}"
    if "not in struct" in str(error) or "not in '" in str(error):
        return _unknown_key(key, error)
    return f"config key '{key}': {_first_line(error)}"


def composition_message(error: Exception) -> str:
    """One line for an error Hydra raised while composing: the key or group and what would be right."""
    cause = error.__cause__
    text = str(error)
    if isinstance(error, OverrideParseException):
        return (f"command-line override does not parse: {_first_line(text)} "
                "(overrides are key=value, e.g. trainer.max_steps=10)")
    present = re.search(r"An item is already at '([^']+)'", text)
    if present:
        return (f"config key '{present.group(1)}': already set, so '+' cannot add it; override it without the '+' "
                f"({present.group(1)}=...)")
    missing = re.search(r"Could not find '([^']+)/([^']+)'", text)
    if missing:
        group, option = missing.groups()
        options = getattr(error, "options", None) or []
        listed = sorted(o for o in options if not o.endswith("_schema") and o != "schema")
        close = difflib.get_close_matches(option, listed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"config group '{group}': no option '{option}'{hint}; available: {listed}"
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        return merge_message(cause)
    return f"config: {_first_line(text)}" + (f" ({_first_line(cause)})" if cause is not None else "")


def run_hydra(hydra_main: Callable[[], object]) -> None:
    """Call a `@hydra.main` function; composition errors print one line and exit 2."""
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"   # Hydra re-raises instead of printing several lines and exiting 1
    try:
        hydra_main()
    except COMPOSE_ERRORS as error:
        print(f"error: {composition_message(error)}", file=sys.stderr)
        sys.exit(2)
    finally:
        if previous is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous
