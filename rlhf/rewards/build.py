"""PPO's reward from its config node (`reward_fn=...`, configs/reward_fn/).

A node is one of
- `{kind: word_count | reward_model | crs, ...}`: a built-in scorer with a typed schema
  (rlhf/rewards/config.py), named after its kind;
- `{_target_: rlhf.rewards.component.RewardComponent, name, weight, on_invalid, fill_value,
  required_fields, fn: <node>}`: a reward with its name, weight and checks;
- `{_target_: <any reward callable>, ...}`: the callable alone (`_partial_: true` for a function),
  with the defaults of RewardComponent, named after its target;
- a list of nodes, or `{combine: [nodes]}`: their weighted sum.
`build_reward` always returns a WeightedSumReward (rlhf/rewards/weighted_sum.py). Reward models are
imported lazily, so the other rewards work without them.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, Mapping

from rlhf.core.errors import ConfigError
from rlhf.core.schema import as_config
from rlhf.rewards.component import RewardComponent, declared_fields
from rlhf.rewards.config import KINDS, CRSRewardConfig, RewardModelRewardConfig, WordCountRewardConfig
from rlhf.rewards.crs import CombinedReward
from rlhf.rewards.weighted_sum import WeightedSumReward
from rlhf.rewards.word_count import WordCountReward

KEY = "reward_fn"
COMBINE = "combine"
FORMS = ("{kind: word_count|reward_model|crs}", "{_target_: a reward callable}",
         "{_target_: rlhf.rewards.component.RewardComponent, fn: ...}", "a list of them", "{combine: [...]}")


def reward_config(cfg, key: str = KEY):
    """The typed config of one `kind` node."""
    if not isinstance(cfg, Mapping):
        return cfg
    kind = cfg.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{key}.kind", f"unknown reward kind {kind!r}; allowed: {', '.join(KINDS)} "
                                         "(or a list of them for a weighted sum)")
    return as_config(KINDS[kind], cfg, key)


def reward_nodes(cfg, key: str = KEY) -> Iterator[tuple[str, object]]:
    """(key path, node) of each part of a reward config: lists and `combine` flattened."""
    if isinstance(cfg, Mapping) and set(cfg) == {COMBINE}:
        cfg, key = cfg[COMBINE], f"{key}.{COMBINE}"
        if not isinstance(cfg, (list, tuple)):
            raise ConfigError(key, "must be a list of rewards")
    if isinstance(cfg, (list, tuple)):
        if not cfg:
            raise ConfigError(key, "an empty list of rewards")
        for i, node in enumerate(cfg):
            yield from reward_nodes(node, f"{key}.{i}")
        return
    yield key, cfg


def _target(node: Mapping, key: str):
    """The function or class a node's `_target_` names (module path, then attribute)."""
    module_name, _, attr = str(node["_target_"]).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(f"{key}._target_", f"cannot import {node['_target_']!r} ({error}); name a function or "
                                             "class on the import path, e.g. my_module.my_reward") from error


def _instantiate(node: Mapping, key: str, tokenizer=None):
    """The callable a `_target_` node names; a `tokenizer` parameter the node leaves unset gets the
    policy's tokenizer (e.g. LengthPenalty with target_tokens)."""
    from hydra.utils import instantiate

    target = _target(node, key)
    node = {"_convert_": "all", **node}
    try:
        takes_tokenizer = "tokenizer" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        takes_tokenizer = False
    extra = {"tokenizer": tokenizer} if takes_tokenizer and tokenizer is not None and "tokenizer" not in node else {}
    try:
        return instantiate(node, **extra)
    except Exception as error:
        cause = error.__cause__ or error
        raise ConfigError(key, f"cannot build the reward {node['_target_']!r}: {type(cause).__name__}: {cause}") from error


def _builtin(cfg, device: str, key: str):
    """The scorer of one `kind` node (typed config)."""
    if isinstance(cfg, WordCountRewardConfig):
        return WordCountReward(cfg.word, cfg.whole_word, cfg.case_sensitive)
    if isinstance(cfg, RewardModelRewardConfig):
        from rlhf.reward_model.scoring import load_reward_model

        if not cfg.path:
            raise ConfigError(f"{key}.path", "a reward_model reward needs the RM folder written by the reward stage")
        return load_reward_model(cfg.path, output=cfg.output, device=device, batch_size=cfg.batch_size)
    if isinstance(cfg, CRSRewardConfig):
        return CombinedReward(_builtin(cfg.preference, device, f"{key}.preference"),
                              _builtin(cfg.absolute, device, f"{key}.absolute"), cfg.w, cfg.normalize)
    raise ConfigError(f"{key}.kind", f"unknown reward config {type(cfg).__name__}")


def _is_component(node: Mapping, key: str) -> bool:
    target = _target(node, key)
    return isinstance(target, type) and issubclass(target, RewardComponent)


def build_component(node, device: str = "cpu", key: str = KEY, tokenizer=None) -> RewardComponent:
    """One part of PPO's reward from its node (or an already built reward, wrapped as is)."""
    if isinstance(node, RewardComponent):
        return node
    if not isinstance(node, Mapping):
        if callable(node) or hasattr(node, "score"):
            return RewardComponent(node)
        raise ConfigError(key, f"a reward is one of {', '.join(FORMS)}; got {type(node).__name__}")
    if "kind" in node:
        cfg = reward_config(node, key)
        return RewardComponent(_builtin(cfg, device, key), name=cfg.kind, weight=cfg.weight)
    if "_target_" not in node:
        raise ConfigError(key, f"a reward is one of {', '.join(FORMS)}; this node has neither `kind` nor "
                               f"`_target_` (keys: {sorted(node)})")
    if _is_component(node, key):
        settings = {k: v for k, v in node.items() if k not in ("_target_", "_convert_", "fn")}
        if "fn" not in node:
            raise ConfigError(f"{key}.fn", "a RewardComponent needs `fn`: the reward callable's node")
        inner = build_component(node["fn"], device, f"{key}.fn", tokenizer)
        try:
            return RewardComponent(inner.fn, **{"name": inner.name, "weight": inner.weight, **settings})
        except TypeError as error:
            raise ConfigError(key, f"RewardComponent: {error}") from error
    target = str(node["_target_"]).rsplit(".", 1)[-1]
    return RewardComponent(_instantiate(node, key, tokenizer), name=target)


def build_reward(cfg, device: str = "cpu", key: str = KEY, tokenizer=None) -> WeightedSumReward:
    """PPO's reward from a `reward_fn` config node; called as reward(prompts, responses, metadata)
    -> RewardResult, or reward.score(prompts, responses) -> float32 [B]."""
    if hasattr(cfg, "__dataclass_fields__"):    # an already typed kind config
        return WeightedSumReward([RewardComponent(_builtin(cfg, device, key), name=cfg.kind, weight=cfg.weight)])
    return WeightedSumReward([build_component(node, device, k, tokenizer) for k, node in reward_nodes(cfg, key)])


def required_metadata(cfg, key: str = KEY) -> list[tuple[str, str]]:
    """(key path of the reward, metadata field) for every field some part of the reward reads,
    found without loading any model: a component's `required_fields`, else its target's
    `required_fields` (a class attribute, or an attribute set on a function); a target whose
    `required_fields` is a property (it depends on the arguments, e.g. `field`) is built to read it."""
    out = []
    for path, node in reward_nodes(cfg, key):
        if not isinstance(node, Mapping) or "kind" in node or "_target_" not in node:
            continue
        if _is_component(node, path):
            if node.get("required_fields") is not None:
                out += [(path, f) for f in node["required_fields"]]
                continue
            node, path = node.get("fn") or {}, f"{path}.fn"
            if not isinstance(node, Mapping) or "_target_" not in node:
                continue
        target = _target(node, path)
        declared = inspect.getattr_static(target, "required_fields", ())
        fields = declared_fields(_instantiate(node, path)) if isinstance(declared, property) else declared_fields(target)
        out += [(path, f) for f in fields]
    return out
