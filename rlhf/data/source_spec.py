"""A data source named in config (rlhf.data.config.SourceConfig): a file or hub id read through an
adapter, or a built-in set.

```yaml
- path: ${paths.data_dir}/sft/alpaca_data_5000.jsonl.gz   # or a hub id
  adapter: alpaca
  weight: 1.0      # mixture weight
  limit: null      # first N records
- builtin: demo    # records the project generates itself
  n: 256
- path: openai/gsm8k            # prompts with metadata for a verifiable reward
  adapter: generic
  kind: prompt
  fields: {prompt: question}
  metadata_fields: {answer: answer}
```
"""

from __future__ import annotations

from collections.abc import Mapping

from rlhf.core.errors import ConfigError
from rlhf.core.schema import as_config
from rlhf.data.config import SourceConfig
from rlhf.data.sources import SourceTally, load_records


BUILTIN_METADATA = {"demo": (), "arithmetic": ("answer", "level")}
"""The metadata fields each built-in set's prompt records carry (besides the id)."""


def _builtin(name: str, kind: str, n: int | None, seed: int, split: str = "train",
             levels: list | None = None) -> list[dict]:
    if name not in BUILTIN_METADATA:
        raise ConfigError("data.sources.builtin", f"unknown built-in set '{name}'; allowed: {sorted(BUILTIN_METADATA)}")
    if name == "arithmetic":
        from rlhf.data import arithmetic_task

        levels = tuple(levels) if levels else arithmetic_task.LEVELS
        if kind == "conversation":
            return arithmetic_task.arithmetic_sft_records(n or 512, seed, levels)
        return arithmetic_task.arithmetic_prompts(split, n or 512, seed, levels)
    from rlhf.data import demo_task

    if kind == "conversation":
        return demo_task.demo_sft_records(n or 256, seed)
    split = {"prompt": "rl", "eval": "eval"}.get(kind, "rl")
    return [{"prompt": r["prompt"], "source": "demo", "id": r["id"]} for r in demo_task.demo_prompts(split, n, seed)]


def metadata_provided(spec: SourceConfig | Mapping, key: str = "data.sources") -> tuple[str, ...]:
    """The metadata fields the prompt records of one source carry: `id` always, the built-in set's
    own, or the keys of its `metadata_fields` mapping (checked before a run, rlhf.config.fit)."""
    spec = as_config(SourceConfig, spec, key)
    own = BUILTIN_METADATA.get(spec.builtin, ()) if spec.builtin else tuple(spec.metadata_fields or {})
    return ("id", *own)


def load_source(spec: SourceConfig | Mapping, kind: str, seed: int = 0, key: str = "data.sources",
                tally: SourceTally | None = None) -> list[dict]:
    """Records of one source; `spec` is checked as a SourceConfig (`key` names it in errors). Prompt
    records carry `metadata` when the set brings it or `metadata_fields` maps it. A file's records
    read, parsed and skipped (by reason) are counted in `tally` (built-in sets skip nothing)."""
    spec = as_config(SourceConfig, spec, key)
    if spec.levels and spec.builtin != "arithmetic":
        raise ConfigError(f"{key}.levels", f"only the built-in arithmetic set has levels, not "
                                           f"{spec.builtin or spec.path}")
    if spec.builtin:
        if spec.metadata_fields:
            raise ConfigError(f"{key}.metadata_fields", f"the built-in set '{spec.builtin}' brings its own metadata "
                                                        f"({', '.join(BUILTIN_METADATA[spec.builtin]) or 'none'}); "
                                                        "remove metadata_fields")
        return _builtin(spec.builtin, kind, spec.n, seed, spec.split, spec.levels)
    if not spec.path:
        raise ConfigError(key, "each source needs 'path' (+ 'adapter') or 'builtin'")
    if not spec.adapter:
        raise ConfigError(f"{key}.adapter", f"source {spec.path} names no adapter")
    return load_records(spec.path, spec.adapter, split=spec.split, limit=spec.limit,
                        metadata_fields=spec.metadata_fields, tally=tally, **spec.adapter_kwargs())


def load_sources(specs: list, kind: str, seed: int = 0, key: str = "data.sources"
                 ) -> tuple[list[list[dict]], dict[str, SourceTally]]:
    """Records of each source in order, and each source's tally under its key (`data.sources.<i>`),
    which the data modules keep so that a run's skips can be read back, not only from the log."""
    groups, tallies = [], {}
    for i, spec in enumerate(specs):
        tallies[f"{key}.{i}"] = tally = SourceTally(f"{key}.{i}")
        groups.append(load_source(spec, kind=kind, seed=seed, key=f"{key}.{i}", tally=tally))
    return groups, tallies
