"""A data source named in config (rlhf.data.config.SourceConfig): a file or hub id read through an
adapter, or a built-in set.

```yaml
- path: ${paths.data_dir}/sft/alpaca_data_5000.jsonl.gz   # or a hub id
  adapter: alpaca
  weight: 1.0      # mixture weight
  limit: null      # first N records
- builtin: demo    # records the project generates itself
  n: 256
```
"""

from __future__ import annotations

from collections.abc import Mapping

from rlhf.core.errors import ConfigError
from rlhf.core.schema import as_config
from rlhf.data.config import SourceConfig
from rlhf.data.sources import load_records


def _builtin(name: str, kind: str, n: int | None, seed: int) -> list[dict]:
    if name != "demo":
        raise ConfigError("data.sources.builtin", f"unknown built-in set '{name}'; allowed: ['demo']")
    from rlhf.data import demo_task

    if kind == "conversation":
        return demo_task.demo_sft_records(n or 256, seed)
    split = {"prompt": "rl", "eval": "eval"}.get(kind, "rl")
    return [{"prompt": r["prompt"], "source": "demo", "id": r["id"]} for r in demo_task.demo_prompts(split, n, seed)]


def load_source(spec: SourceConfig | Mapping, kind: str, seed: int = 0, key: str = "data.sources") -> list[dict]:
    """Records of one source; `spec` is checked as a SourceConfig (`key` names it in errors)."""
    spec = as_config(SourceConfig, spec, key)
    if spec.builtin:
        return _builtin(spec.builtin, kind, spec.n, seed)
    if not spec.path:
        raise ConfigError(key, "each source needs 'path' (+ 'adapter') or 'builtin'")
    if not spec.adapter:
        raise ConfigError(f"{key}.adapter", f"source {spec.path} names no adapter")
    return load_records(spec.path, spec.adapter, split=spec.split, limit=spec.limit, **spec.adapter_kwargs())
