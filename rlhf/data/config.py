"""Typed settings of the data modules, one dataclass per kind (`data=<option>`): SFT conversations,
preference groups, absolute labels, RL prompts. Each is the schema of its files in configs/data/
(`defaults: [sft_schema, _self_]` ...), so a data YAML holds only its sources and what differs.

Each field holds its default once; the attribute docstring under it gives the source. The data
module is handed its tokenizer by the stage (rlhf/train.py), so no `model` key lives here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlhf.core.schema import FRACTION, NON_NEGATIVE, POSITIVE, REQUIRED, section, setting
from rlhf.data.pairs import PAIR_BUILDERS
from rlhf.data.prompt_encoding import OVERLONG_MODES
from rlhf.data.templates import TEMPLATES as TEMPLATE_CLASSES

TEMPLATES = tuple(TEMPLATE_CLASSES)
PAIR_STRATEGIES = tuple(PAIR_BUILDERS)
TRUNCATIONS = ("group", "per_response")
PADDING_SIDES = ("left", "right")
INVALID_ACTIONS = ("skip", "error")
WEIGHT_MODES = ("scaled", "one_plus")                      # rlhf.data.imbalance.apply_variant
BUILTINS = ("demo", "arithmetic")                          # rlhf.data.source_spec


@dataclass
class SourceConfig:
    """One entry of `sources`: a file or hub id read through an adapter, or a built-in set."""

    path: str | None = None
    """A local JSONL(.gz) file or a hub dataset id; None with `builtin`."""
    adapter: str | None = None
    """How a record becomes examples (rlhf.data.sources.ADAPTERS); needed with `path`."""
    builtin: str | None = setting(None, choices=BUILTINS)
    """A set the project generates itself (rlhf/data/demo_task.py, arithmetic_task.py), instead of `path`."""
    n: int | None = setting(None, **POSITIVE)
    """Records of the built-in set; None = its default size."""
    weight: float = setting(1.0, **NON_NEGATIVE)
    """Mixture weight of an SFT blend (ICE-GRT §3.1 gives no ratio: 1 = the source as is)."""
    limit: int | None = setting(None, **POSITIVE)
    """First N records; None = all."""
    split: str = "train"
    """Split of a hub dataset, or of the built-in arithmetic task (train | test)."""
    levels: list | None = None
    """Built-in arithmetic task: the difficulty levels drawn (rlhf/data/arithmetic_task.py); None = all."""
    fields: dict | None = None
    """`generic` adapter: the record keys of prompt, response (and system)."""
    kind: str | None = setting(None, choices=("conversation", "prompt"))
    """`generic` adapter: what a record is; None = a conversation."""
    languages: list | None = None
    """OASST adapters: the languages kept; None = all (the thesis keeps the 20 most frequent)."""
    metadata_fields: dict | None = None
    """Prompt sources: metadata key -> the record field it is read from, e.g. {answer: answer}; each
    prompt's metadata (what rewards read, docs/rewards.md) also holds its `id`. None = only the id
    (built-in sets bring their own: arithmetic gives answer and level)."""

    def adapter_kwargs(self) -> dict:
        """The adapter-specific settings that are set, as the adapter's keyword arguments."""
        values = {"fields": self.fields, "kind": self.kind, "languages": self.languages}
        return {k: v for k, v in values.items() if v is not None}


@dataclass
class AbsoluteSourceConfig:
    """One entry of an absolute-label data config's `sources`: a JSONL of labelled responses."""

    path: str = REQUIRED
    """{"prompt", "response", "labels": {criterion: value}} or {"label": y} per line."""
    limit: int | None = setting(None, **POSITIVE)
    """First N records; None = all."""
    split: str = "train"


@dataclass
class SplitDataConfig:
    """What the SFT and reward data modules share: sources, template, length, split, batches."""

    sources: list[Any] = section(SourceConfig, many=True)
    template: str = setting("chatml", choices=TEMPLATES)
    """thesis Fig. 15: ChatML; ICE-GRT §3.1 has its own."""
    max_length: int = setting(2048, **POSITIVE)
    """thesis §5.2 (SFT) and §5.3 (reward models)."""
    val_fraction: float = setting(0.05, **FRACTION)
    """thesis §5.1.1: a 95/5 train/validation split."""
    batch_size: int = setting(4, **POSITIVE)
    """thesis Table 3 (per device)."""
    eval_batch_size: int | None = setting(None, **POSITIVE)
    """None = batch_size."""
    num_workers: int = setting(0, **NON_NEGATIVE)
    seed: int = 0


@dataclass
class SFTDataConfig(SplitDataConfig):
    """`data` of the SFT stage (rlhf.data.sft_datamodule.SFTDataModule)."""

    _target_: str = "rlhf.data.sft_datamodule.SFTDataModule"
    _convert_: str = "object"
    mixture_total: int | None = setting(None, **POSITIVE)
    """Size of a weighted blend; None = each source repeated/subsampled by its own weight."""
    invalid: str = setting("skip", choices=INVALID_ACTIONS)
    """An empty response, or one cut away by max_length: skip it (counted, logged) or stop."""


@dataclass
class RewardDataConfig(SplitDataConfig):
    """What the preference and absolute data modules add: the thesis truncation and padding."""

    val_fraction: float = setting(0.1, **FRACTION)
    """10 % held out: the validation set is also the reference set of the reward stats (docs/methods.md §3.9)."""
    min_prompt_tokens: int = setting(256, **NON_NEGATIVE)
    """thesis §5.3: the prompt keeps >= 256 tokens, cut from the left."""
    padding_side: str = setting("right", choices=PADDING_SIDES)
    """Free: the RM reads the last real token from the mask."""


@dataclass
class PreferenceDataConfig(RewardDataConfig):
    """`data` of the preference reward stage (rlhf.data.preference_datamodule.PreferenceDataModule)."""

    _target_: str = "rlhf.data.preference_datamodule.PreferenceDataModule"
    _convert_: str = "object"
    batch_size: int = setting(32, **POSITIVE)
    """thesis Table 5 (preference RM): counts groups here, each of 2-K replies."""
    pairs: str = setting("all_pairs", choices=PAIR_STRATEGIES)
    """thesis: all C(K,2) pairs of a group; ICE-GRT: top2_bottom2; or best_vs_rest."""
    rank_gap_margin: float = setting(0.0, **NON_NEGATIVE)
    """Per-pair margin m·(rank gap); 0 = the loss's fixed margin (ICE-GRT §3.2 leaves m open)."""
    truncation: str = setting("group", choices=TRUNCATIONS)
    """Cut a group's prompt once (same context for all its replies) or per_response, as the scorer does."""
    shared_prefix: bool = True
    """Packed rows: each prompt computed once for its replies, short groups share a row (sdpa/eager)."""
    invalid: str = setting("skip", choices=INVALID_ACTIONS)
    """A pair with identical chosen and rejected (as text or after truncation), an empty response, or
    no response token left by max_length: skip it (counted, logged) or stop with a DataError."""


@dataclass
class AbsoluteDataConfig(RewardDataConfig):
    """`data` of the absolute reward stage (rlhf.data.absolute_datamodule.AbsoluteDataModule)."""

    _target_: str = "rlhf.data.absolute_datamodule.AbsoluteDataModule"
    _convert_: str = "object"
    sources: list[Any] = section(AbsoluteSourceConfig, many=True)
    batch_size: int = setting(128, **POSITIVE)
    """thesis Table 5 (absolute RM)."""
    label_weights: Any = "quality"
    """thesis's final label-only mode; or the presets w2, w3 (thesis §5.3.1) or a dict criterion -> weight."""
    variant: str | None = None
    """An imbalance variant, e.g. under_s_8k+wgt_s_075 (thesis Tables 6-7); `augment` needs `augmenter`."""
    weight_mode: str = setting("scaled", choices=WEIGHT_MODES)
    """Weight s·W on the low bucket (docs/methods.md §3.7 [default reading]); or one_plus."""
    augmenter: Any = None
    """{_target_: rlhf.data.paraphrase.ParaphraseAugmenter, paraphrase_fn: ...} for `augment` variants."""


@dataclass
class PTXConfig:
    """The SFT corpus of PPO's pretraining-loss term (docs/methods.md §4.9); no sources = off."""

    sources: list[Any] = section(SourceConfig, many=True)
    batch_size: int | None = setting(None, **POSITIVE)
    """None = data.batch_size."""
    max_length: int = setting(512, **POSITIVE)


@dataclass
class PromptDataConfig:
    """`data` of the PPO stage (rlhf.data.prompt_datamodule.PromptDataModule)."""

    _target_: str = "rlhf.data.prompt_datamodule.PromptDataModule"
    _convert_: str = "object"
    sources: list[Any] = section(SourceConfig, many=True)
    template: str = setting("chatml", choices=TEMPLATES)
    batch_size: int = setting(16, **POSITIVE)
    """thesis Table 8: 16 rollouts per PPO step (per process)."""
    max_prompt_tokens: int | None = setting(1024, **POSITIVE)
    """thesis §5.4; None = no limit."""
    overlong: str = setting("drop", choices=OVERLONG_MODES)
    """thesis §5.4: longer prompts are discarded (truncate = keep the last tokens)."""
    shuffle: bool = True
    seed: int = 0
    ptx: Any = section(PTXConfig)
    """None = no PTX corpus."""
