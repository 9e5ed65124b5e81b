"""Preference data: ranked groups -> one row per response + a pair index (docs/methods.md §3.3).

Every source becomes groups {"prompt", "responses", "ranks"} (rlhf.data.sources: HH-RLHF and flat
pairs are groups of two ranked [0, 1]; OASST siblings keep their ranks). The configured pair
builder (rlhf.data.pairs: top2_bottom2 ICE-GRT, all_pairs thesis, best_vs_rest) turns ranks into
(chosen, rejected) indices; a batch holds whole groups, so all pairs of a prompt share a batch and
the loss can average over them (thesis eq. 2.12), with one RM forward per response.
"""

from __future__ import annotations

import logging
from collections import Counter

import torch

from rlhf.data.collate import length_mask, pad_sequences
from rlhf.data.mixture import split_train_val
from rlhf.data.packing import pack_groups, token_columns
from rlhf.data.pairs import build_pairs
from rlhf.data.reward_data import RewardDataModule
from rlhf.data.source_spec import load_sources
from rlhf.data.templates import get_template, prompt_group_parts, tokenize_prompt_response
from rlhf.core.errors import DataError
from rlhf.data.config import PreferenceDataConfig

log = logging.getLogger(__name__)

IDENTICAL, EMPTY, CUT = ("identical chosen and rejected", "an empty response",
                         "no response token left after truncation")


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

    Groups that carry `prompt_lengths` (PreferenceDataModule's do) also give what a causal-LM loss on
    the responses needs, in either layout: response_index [M, 2] = (row, column) of the token that
    predicts each response token, response_target [M] that token, response_sequence [M] its sequence,
    sequence_uid [N] (a dataset-wide id per response, for cached reference log-probs) and
    sequence_parts (N (prompt ids, response ids) lists, for batches built from other pairings).
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
        if all("prompt_lengths" in group for group in groups):
            batch.update(self.response_tokens(groups, batch))
        batch["pair_index"] = torch.tensor(pairs, dtype=torch.long).reshape(len(pairs), 2)
        batch["pair_group"] = torch.tensor(group_ids, dtype=torch.long)
        if self.with_margin:
            batch["pair_margin"] = torch.tensor(margins, dtype=torch.float32)
        return batch


    def response_tokens(self, groups: list[dict], batch: dict) -> dict:
        """Where each response token's predictor sits in `batch` (see the class docstring)."""
        seqs = [seq for group in groups for seq in group["input_ids"]]
        starts = [start for group in groups for start in group["prompt_lengths"]]
        if self.shared_prefix:
            last = batch["score_index"].tolist()
            columns, rows, n = [], [], 0
            for group in groups:
                k = len(group["input_ids"])
                columns += token_columns(group["input_ids"], [c for _, c in last[n:n + k]])
                rows += [r for r, _ in last[n:n + k]]
                n += k
        else:
            width = batch["input_ids"].size(1)
            offsets = [width - len(s) if self.padding_side == "left" else 0 for s in seqs]
            columns = [list(range(o, o + len(s))) for o, s in zip(offsets, seqs)]
            rows = list(range(len(seqs)))
        index, target, owner = [], [], []
        for n, (seq, start, cols, row) in enumerate(zip(seqs, starts, columns, rows)):
            for t in range(max(start, 1), len(seq)):
                index.append((row, cols[t - 1]))
                target.append(seq[t])
                owner.append(n)
        return {"response_index": torch.tensor(index, dtype=torch.long).reshape(len(index), 2),
                "response_target": torch.tensor(target, dtype=torch.long),
                "response_sequence": torch.tensor(owner, dtype=torch.long),
                "sequence_uid": torch.tensor([u for group in groups for u in group["uids"]], dtype=torch.long),
                "sequence_parts": [(seq[:start], seq[start:]) for seq, start in zip(seqs, starts)]}


class PreferenceDataModule(RewardDataModule):
    CONFIG = PreferenceDataConfig

    def __init__(self, tokenizer, **settings):
        super().__init__(tokenizer, **settings)
        self.pairs = self.cfg.pairs
        self.rank_gap_margin = self.cfg.rank_gap_margin
        self.truncation = self.cfg.truncation
        self.shared_prefix = self.cfg.shared_prefix
        self.invalid = self.cfg.invalid
        self.skipped: Counter = Counter()   # reason -> pairs dropped by the last setup
        self.tallies: dict = {}             # "data.sources.<i>" -> its records read, parsed, skipped (SourceTally)

    def load_groups(self) -> list[dict]:
        per_source, self.tallies = load_sources(self.sources, kind="preference", seed=self.seed)
        groups = [group for source in per_source for group in source]
        for i, record in enumerate(groups):
            check_group(record, i)
        return groups

    def encode(self, record: dict, template, skipped: Counter | None = None) -> dict | None:
        """Token ids per response (thesis truncation, docs/methods.md §3.2), where each response
        starts, and the group's pairs; None if no pair.

        `truncation=group` cuts the prompt once for the group (rlhf.data.templates.prompt_group_parts);
        `per_response` cuts it for each response on its own, as the RM scorer does at inference.
        A pair nothing can be learnt from (identical texts or tokens, an empty response, a response
        with no token left after the cut) is dropped and counted in `skipped` under its reason.
        """
        skipped = Counter() if skipped is None else skipped
        texts = record["responses"]
        skipped[IDENTICAL] += sum(texts[c] == texts[r] for c, r in build_pairs(record["ranks"], self.pairs))
        pairs, margins = group_pairs(record, self.pairs, self.rank_gap_margin)
        blank = [not (texts[c].strip() and texts[r].strip()) for c, r in pairs]
        skipped[EMPTY] += sum(blank)
        pairs, margins = _without(pairs, margins, blank)
        if not pairs:
            return None
        used = sorted({i for pair in pairs for i in pair})
        position = {i: n for n, i in enumerate(used)}
        responses = [texts[i] for i in used]
        if self.truncation == "group":
            prompt, kept = prompt_group_parts(self.tokenizer, record["prompt"], responses, template, self.max_length,
                                              self.min_prompt_tokens)
            ids, starts = [prompt + r for r in kept], [len(prompt)] * len(kept)
        else:
            encoded = [tokenize_prompt_response(self.tokenizer, record["prompt"], r, template, self.max_length,
                                                self.min_prompt_tokens) for r in responses]
            ids, starts = [e["input_ids"] for e in encoded], [e["prompt_length"] for e in encoded]
        # a response token needs a token before it to be predicted from
        empty = [max(start, 1) >= len(seq) for seq, start in zip(ids, starts)]
        pairs = [(position[c], position[r]) for c, r in pairs]
        cut = [empty[c] or empty[r] for c, r in pairs]
        skipped[CUT] += sum(cut)
        pairs, margins = _without(pairs, margins, cut)
        same = [ids[c] == ids[r] for c, r in pairs]
        skipped[IDENTICAL] += sum(same)
        pairs, margins = _without(pairs, margins, same)
        if not pairs:
            return None
        return {"input_ids": ids, "prompt_lengths": starts, "pairs": pairs, "margins": margins}

    def _encode_split(self, records: list[dict], template, split: str) -> list[dict]:
        """Encoded groups, each response numbered (`uids`) after those of the splits before it;
        skipped pairs are logged with their count, or raise with data.invalid=error."""
        skipped: Counter = Counter()
        groups = []
        for index, record in enumerate(records):
            before = sum(skipped.values())
            group = self.encode(record, template, skipped)
            if self.invalid == "error" and sum(skipped.values()) > before:
                reason = next(r for r in (IDENTICAL, EMPTY, CUT) if skipped[r])
                raise DataError(f"{split} pair from {record.get('origin', f'record {index}')} has {reason} "
                                f"(data.max_length={self.max_length}; data.invalid=skip skips such pairs)")
            if group is not None:
                group["uids"] = list(range(self._next_uid, self._next_uid + len(group["input_ids"])))
                self._next_uid += len(group["input_ids"])
                groups.append(group)
        for reason, count in skipped.items():
            if count:
                log.warning("%s: skipped %d pairs with %s", split, count, reason)
        self.skipped.update(skipped)
        return groups

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        template = get_template(self.template_name, self.require_tokenizer().eos_token)
        train, val = split_train_val(self.load_groups(), self.val_fraction, self.seed)
        self.skipped, self._next_uid = Counter(), 0
        self.train_set = self._encode_split(train, template, "train")
        self.val_set = self._encode_split(val, template, "validation")
        if not self.train_set:
            raise DataError(f"no training group yields a pair under strategy {self.pairs!r} "
                            "(all ties, identical or empty responses?); check data.sources")

    @property
    def num_sequences(self) -> int:
        """Responses numbered by the last setup: one more than the largest `uid`."""
        return self._next_uid

    def collator(self) -> PreferenceCollator:
        return PreferenceCollator(self.tokenizer.pad_token_id, self.padding_side, self.rank_gap_margin > 0,
                                  self.shared_prefix)


def _without(pairs: list, margins: list, drop: list[bool]) -> tuple[list, list]:
    """pairs and their margins minus those flagged in `drop`."""
    return [p for p, d in zip(pairs, drop) if not d], [m for m, d in zip(margins, drop) if not d]
