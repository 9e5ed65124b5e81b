"""Preference data: ranked groups -> one row per response + a pair index (docs/methods.md §3.3).

Every source becomes groups {"prompt", "responses", "ranks"} (rlhf.data.sources: HH-RLHF and flat
pairs are groups of two ranked [0, 1]; OASST siblings keep their ranks). The configured pair
builder (rlhf.data.pairs: top2_bottom2 ICE-GRT, all_pairs thesis, best_vs_rest) turns ranks into
(chosen, rejected) indices; a batch holds whole groups, so all pairs of a prompt share a batch and
the loss can average over them (thesis eq. 2.12), with one RM forward per response.
"""

from __future__ import annotations

import torch

from rlhf.data.collate import length_mask, pad_sequences
from rlhf.data.mixture import split_train_val
from rlhf.data.packing import pack_groups
from rlhf.data.pairs import build_pairs
from rlhf.data.reward_data import RewardDataModule
from rlhf.data.source_spec import load_source
from rlhf.data.templates import get_template, tokenize_prompt_group, tokenize_prompt_response
from rlhf.core.errors import DataError
from rlhf.data.config import PreferenceDataConfig


def check_group(record: dict, index: int) -> None:
    """A preference group must have a prompt ending in a user turn and one rank per string reply."""
    prompt, responses, ranks = record.get("prompt"), record.get("responses"), record.get("ranks")
    source = record.get("source")
    if not isinstance(prompt, list) or not prompt or not isinstance(prompt[-1], dict) or prompt[-1].get("role") != "user":
        raise DataError("'prompt' must be a list of messages ending with a user turn", source=source, record=index)
    if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
        raise DataError("'responses' must be a list of strings", source=source, record=index)
    if not isinstance(ranks, list) or len(ranks) != len(responses):
        raise DataError(f"'ranks' must give one rank per response ({len(responses)})", source=source, record=index)


def group_pairs(record: dict, strategy: str, rank_gap_margin: float) -> tuple[list[tuple[int, int]], list[float]]:
    """Pairs of one group, minus pairs whose two texts are identical (a tie in all but name).

    With rank_gap_margin m > 0 each pair's margin is m · (rank_l − rank_w), a per-pair margin for
    the ranking loss (ICE-GRT §3.2 leaves m open; docs/methods.md §8.3.1).
    """
    pairs = [(c, r) for c, r in build_pairs(record["ranks"], strategy)
             if record["responses"][c] != record["responses"][r]]
    margins = [rank_gap_margin * (record["ranks"][r] - record["ranks"][c]) for c, r in pairs]
    return pairs, margins


class PreferenceCollator:
    """Groups -> input_ids/attention_mask [N, T] over all responses, pair_index [P, 2], pair_group [P].

    pair_margin [P] is added when the groups carry margins. `padding_side` is free: the RM reads the
    last real token from the mask. With `shared_prefix` the groups are packed instead, each prompt
    once, short groups sharing a row (rlhf.data.packing: input_ids/position_ids/segment_ids/
    document_ids [R, T], score_index [N, 2]); sequence indices, and so pair_index, are the same in
    both layouts.
    """

    def __init__(self, pad_token_id: int, padding_side: str = "right", with_margin: bool = False,
                 shared_prefix: bool = False):
        self.pad_token_id = pad_token_id
        self.padding_side = padding_side
        self.with_margin = with_margin
        self.shared_prefix = shared_prefix

    def __call__(self, groups: list[dict]) -> dict[str, torch.Tensor]:
        if not groups:
            raise ValueError("empty batch: the dataloader produced no groups")
        seqs, pairs, group_ids, margins = [], [], [], []
        for g, group in enumerate(groups):
            offset = len(seqs)
            seqs.extend(group["input_ids"])
            pairs.extend((offset + c, offset + r) for c, r in group["pairs"])
            group_ids.extend([g] * len(group["pairs"]))
            margins.extend(group["margins"])
        if self.shared_prefix:
            batch = pack_groups([group["input_ids"] for group in groups], self.pad_token_id)
        else:
            input_ids = pad_sequences(seqs, self.pad_token_id, self.padding_side)
            batch = {"input_ids": input_ids,
                     "attention_mask": length_mask([len(s) for s in seqs], input_ids.size(1), self.padding_side)}
        batch["pair_index"] = torch.tensor(pairs, dtype=torch.long).reshape(len(pairs), 2)
        batch["pair_group"] = torch.tensor(group_ids, dtype=torch.long)
        if self.with_margin:
            batch["pair_margin"] = torch.tensor(margins, dtype=torch.float32)
        return batch


class PreferenceDataModule(RewardDataModule):
    CONFIG = PreferenceDataConfig

    def __init__(self, tokenizer, **settings):
        super().__init__(tokenizer, **settings)
        self.pairs = self.cfg.pairs
        self.rank_gap_margin = self.cfg.rank_gap_margin
        self.truncation = self.cfg.truncation
        self.shared_prefix = self.cfg.shared_prefix

    def load_groups(self) -> list[dict]:
        groups = []
        for i, spec in enumerate(self.sources):
            groups.extend(load_source(spec, kind="preference", seed=self.seed, key=f"data.sources.{i}"))
        for i, record in enumerate(groups):
            check_group(record, i)
        return groups

    def encode(self, record: dict, template) -> dict | None:
        """Token ids per response (thesis truncation, docs/methods.md §3.2) and the group's pairs;
        None if no pair.

        `truncation=group` cuts the prompt once for the group (rlhf.data.templates.tokenize_prompt_group);
        `per_response` cuts it for each response on its own, as the RM scorer does at inference.
        """
        pairs, margins = group_pairs(record, self.pairs, self.rank_gap_margin)
        if not pairs:
            return None
        used = sorted({i for pair in pairs for i in pair})
        position = {i: n for n, i in enumerate(used)}
        responses = [record["responses"][i] for i in used]
        if self.truncation == "group":
            ids = tokenize_prompt_group(self.tokenizer, record["prompt"], responses, template, self.max_length,
                                        self.min_prompt_tokens)
        else:
            ids = [tokenize_prompt_response(self.tokenizer, record["prompt"], r, template, self.max_length,
                                            self.min_prompt_tokens)["input_ids"] for r in responses]
        return {"input_ids": ids, "pairs": [(position[c], position[r]) for c, r in pairs], "margins": margins}

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        template = get_template(self.template_name, self.require_tokenizer().eos_token)
        train, val = split_train_val(self.load_groups(), self.val_fraction, self.seed)
        self.train_set = [g for g in (self.encode(r, template) for r in train) if g is not None]
        self.val_set = [g for g in (self.encode(r, template) for r in val) if g is not None]
        if not self.train_set:
            raise DataError(f"no training group yields a pair under strategy {self.pairs!r} "
                            "(all ties or identical responses?); check data.sources")

    def collator(self) -> PreferenceCollator:
        return PreferenceCollator(self.tokenizer.pad_token_id, self.padding_side, self.rank_gap_margin > 0,
                                  self.shared_prefix)
