"""A data source named in config: a file or hub id read through an adapter, or a built-in set.

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

from rlhf.data.sources import load_records
from rlhf.core.errors import ConfigError

RESERVED = {"path", "adapter", "weight", "limit", "split", "builtin", "n"}


def _builtin(name: str, kind: str, n: int | None, seed: int) -> list[dict]:
    if name != "demo":
        raise ConfigError("data.sources.builtin", f"unknown built-in set '{name}'; allowed: ['demo']")
    from rlhf.data import demo_task

    if kind == "conversation":
        return demo_task.demo_sft_records(n or 256, seed)
    split = {"prompt": "rl", "eval": "eval"}.get(kind, "rl")
    return [{"prompt": r["prompt"], "source": "demo", "id": r["id"]} for r in demo_task.demo_prompts(split, n, seed)]


def load_source(spec: dict, kind: str, seed: int = 0) -> list[dict]:
    spec = dict(spec)
    if spec.get("builtin"):
        return _builtin(spec["builtin"], kind, spec.get("n"), seed)
    if not spec.get("path"):
        raise ConfigError("data.sources", f"each source needs 'path' (+ 'adapter') or 'builtin', got {sorted(spec)}")
    if not spec.get("adapter"):
        raise ConfigError("data.sources.adapter", f"source {spec['path']} names no adapter")
    extra = {k: v for k, v in spec.items() if k not in RESERVED}
    return load_records(spec["path"], spec["adapter"], split=spec.get("split", "train"), limit=spec.get("limit"), **extra)
