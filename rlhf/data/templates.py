"""Prompt templates and response-only label masks (docs/methods.md §2.1, §2.2, §3.2).

A conversation is rendered as a list of segments, each flagged trainable or not, and each segment
is tokenized on its own. The label mask is then exact by construction: no re-tokenization of the
joined string, no search for marker tokens, and nothing depends on the pad id.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from rlhf.core.errors import ConfigError, DataError

IGNORE_INDEX = -100
ICE_GRT_PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)


@dataclass(frozen=True)
class Segment:
    text: str
    trainable: bool


class ChatMLTemplate:
    """Thesis template (thesis §5.1.1, Fig. 15); multi-turn threads repeat the block per turn."""

    name = "chatml"
    generation_prefix = "<|im_start|>assistant\n"
    stop_strings = ("<|im_end|>",)

    def segments(self, messages: list[dict], eos_token: str | None = None) -> list[Segment]:
        out = []
        for message in messages:
            role, content = message["role"], message["content"]
            if role == "assistant":
                out.append(Segment(self.generation_prefix, False))
                # The closing <|im_end|> carries loss so the model learns to stop (docs/methods.md §2.2).
                out.append(Segment(content + "<|im_end|>", True))
                out.append(Segment("\n", False))
            else:
                out.append(Segment(f"<|im_start|>{role}\n{content}<|im_end|>\n", False))
        return out

    def render_prompt(self, messages: list[dict]) -> str:
        return "".join(s.text for s in self.segments(messages)) + self.generation_prefix


class IceGrtTemplate:
    """ICE-GRT template, verbatim (ICE-GRT §3.1): `<preamble> ### USER: <INPUT> ASSISTANT: <OUTPUT>`.

    The seed gives no multi-turn form; turns repeat Vicuna-style (docs/methods.md §2.1 [default]).
    A system message replaces the preamble. The response is followed by EOS, which carries loss.
    """

    name = "ice_grt"
    generation_prefix = " ASSISTANT:"

    def __init__(self, eos_token: str = "</s>"):
        self.eos_token = eos_token
        self.stop_strings = (eos_token, " USER:", "### USER:")

    def segments(self, messages: list[dict], eos_token: str | None = None) -> list[Segment]:
        eos = eos_token or self.eos_token
        preamble = ICE_GRT_PREAMBLE
        if messages and messages[0]["role"] == "system":
            preamble, messages = messages[0]["content"], messages[1:]
        out = [Segment(preamble + " ###", False)]
        for message in messages:
            if message["role"] == "user":
                out.append(Segment(f" USER: {message['content']}", False))
            elif message["role"] == "assistant":
                out.append(Segment(self.generation_prefix, False))
                out.append(Segment(f" {message['content']}{eos}", True))
            else:
                raise DataError(f"ICE-GRT template has no place for role '{message['role']}' after the start")
        return out

    def render_prompt(self, messages: list[dict]) -> str:
        return "".join(s.text for s in self.segments(messages)) + self.generation_prefix


TEMPLATES = {"chatml": ChatMLTemplate, "ice_grt": IceGrtTemplate}


def get_template(name: str, eos_token: str | None = None):
    if name not in TEMPLATES:
        raise ConfigError("data.template", f"unknown template '{name}'; allowed: {sorted(TEMPLATES)}")
    if name == "ice_grt":
        return IceGrtTemplate(eos_token or "</s>")
    return ChatMLTemplate()


def _encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def tokenize_conversation(tokenizer: PreTrainedTokenizerBase, messages: list[dict], template,
                          max_length: int | None = None) -> dict[str, list[int]]:
    """Token ids and labels for SFT; every assistant turn carries loss, everything else is -100.

    Over-long threads are cut from the right (docs/methods.md §2.5 [default] for SFT).
    """
    input_ids: list[int] = []
    labels: list[int] = []
    for segment in template.segments(messages, eos_token=tokenizer.eos_token):
        ids = _encode(tokenizer, segment.text)
        input_ids += ids
        labels += ids if segment.trainable else [IGNORE_INDEX] * len(ids)
    if max_length is not None:
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    return {"input_ids": input_ids, "labels": labels}


def truncate_prompt_response(prompt_ids: list[int], response_ids: list[int], max_length: int,
                             min_prompt_tokens: int) -> tuple[list[int], list[int]]:
    """Thesis rule (thesis §5.3, docs/methods.md §3.2): the prompt keeps at least `min_prompt_tokens` and is
    cut from its beginning so the latest context survives; the response fills the rest and only
    its tail is dropped when it alone exceeds `max_length - min_prompt_tokens`."""
    if min_prompt_tokens >= max_length:
        raise ConfigError("data.min_prompt_tokens", f"{min_prompt_tokens} must be below max_length {max_length}")
    response_budget = max_length - min(min_prompt_tokens, len(prompt_ids))
    response_ids = response_ids[:response_budget]
    prompt_budget = max_length - len(response_ids)
    if len(prompt_ids) > prompt_budget:
        prompt_ids = prompt_ids[len(prompt_ids) - prompt_budget :]
    return prompt_ids, response_ids


def _prompt_and_response_ids(tokenizer: PreTrainedTokenizerBase, prompt: list[dict], response: str,
                             template) -> tuple[list[int], list[int]]:
    segments = template.segments(list(prompt) + [{"role": "assistant", "content": response}],
                                 eos_token=tokenizer.eos_token)
    # The last assistant turn is the response; everything before its trainable segment is prompt.
    last = max(i for i, s in enumerate(segments) if s.trainable)
    prompt_ids = [t for s in segments[:last] for t in _encode(tokenizer, s.text)]
    response_ids = [t for s in segments[last:] if s.trainable for t in _encode(tokenizer, s.text)]
    return prompt_ids, response_ids


def tokenize_prompt_response(tokenizer: PreTrainedTokenizerBase, prompt: list[dict], response: str, template,
                             max_length: int, min_prompt_tokens: int = 256) -> dict[str, list[int]]:
    """Ids and labels for one (prompt, response) pair, as used by reward models and PTX.

    `labels` marks the response tokens (loss only there), with the thesis truncation rule.
    """
    prompt_ids, response_ids = _prompt_and_response_ids(tokenizer, prompt, response, template)
    prompt_ids, response_ids = truncate_prompt_response(prompt_ids, response_ids, max_length, min_prompt_tokens)
    return {"input_ids": prompt_ids + response_ids,
            "labels": [IGNORE_INDEX] * len(prompt_ids) + response_ids,
            "prompt_length": len(prompt_ids)}


def tokenize_prompt_group(tokenizer: PreTrainedTokenizerBase, prompt: list[dict], responses: list[str], template,
                          max_length: int, min_prompt_tokens: int = 256) -> list[list[int]]:
    """Ids of each response of one prompt, the prompt cut once for the whole group.

    The thesis rule with the prompt budget set by the group's longest (kept) response, so every
    response of a comparison is judged on the same context: the context no longer shrinks with the
    reply's length (a cue a per-response cut would hand the RM), and the responses share a token
    prefix that a packed forward computes once (rlhf.data.packing).
    """
    shared_prompt, kept = prompt_group_parts(tokenizer, prompt, responses, template, max_length, min_prompt_tokens)
    return [shared_prompt + r for r in kept]


def prompt_group_parts(tokenizer: PreTrainedTokenizerBase, prompt: list[dict], responses: list[str], template,
                       max_length: int, min_prompt_tokens: int = 256) -> tuple[list[int], list[list[int]]]:
    """(the group's shared, cut prompt ids, each kept response's ids): tokenize_prompt_group before
    the join, for callers that need the prompt/response boundary (DPO's response-token mask)."""
    encoded = [_prompt_and_response_ids(tokenizer, prompt, r, template) for r in responses]
    prompt_ids = encoded[0][0]
    if any(p != prompt_ids for p, _ in encoded):
        raise DataError("the template renders the prompt differently for different responses")
    kept = [truncate_prompt_response(prompt_ids, r, max_length, min_prompt_tokens)[1] for _, r in encoded]
    longest = max(kept, key=len)
    shared_prompt, _ = truncate_prompt_response(prompt_ids, longest, max_length, min_prompt_tokens)
    return shared_prompt, kept
