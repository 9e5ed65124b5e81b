"""Verifiable rewards: a response is scored against a reference answer stored in the metadata.

Every reward here is a callable

    reward(prompts: list[list[dict]], responses: list[str], metadata: list[dict])
        -> (scores: list[float], details: dict[str, list])

with one metadata dict per response (e.g. {"answer": "72"}), a score of 1.0 (correct) or 0.0, and
per-response details for logging:

- ``parsed``: whether an answer could be read from the response. A response with no answer
  scores 0 and is counted here; it never raises.
- ``hit``: whether that answer matches the reference.
- ``pred``: the answer read from the response (a string), or None.
- ``ref_parsed``: whether the reference itself could be read (a reference that cannot be read
  scores every response 0 and is logged once as a warning).

A metadata row that lacks the configured field raises a DataError that names the field.

The reference may be a bare answer ("72", "1,080", "\\frac{1}{2}", 72) or a full GSM8K answer: any
reference string containing ``####`` is reduced to the number after its last ``####`` first
(`gsm8k_reference`).
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation

from rlhf.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

__all__ = ["ExactMatchReward", "MathAnswerReward", "NumericMatchReward", "anchored_number", "canonical_number", "gsm8k_reference",
           "last_number"]

# ---------------------------------------------------------------------------------------------
# The GSM8K number grammar, in one place: rlhf/evaluate/gsm8k.py grades with these functions, so
# the metric a reward is meant to move and the reward read the same numbers.
# ---------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")
_ANSWER_MARKERS = (re.compile(r"####"), re.compile(r"answer is", re.IGNORECASE))


def canonical_number(text: str) -> str | None:
    """'1,234.50' -> '1234.5', '18.00' -> '18'; None when it is not a finite number."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _numbers(text: str) -> list[str]:
    """Numbers in reading order; a unicode minus and a minus before a currency sign ('-$5') count."""
    return _NUMBER.findall(text.replace("\u2212", "-").replace("-$", "-"))


def last_number(text: str) -> str | None:
    """The last number in the text, canonical ('so she pays $1,080.' -> '1080'), or None.

    Number grammar: thousands commas are dropped ('1,080'), currency signs and units around a
    number are ignored ('$18', '18 dollars', '5kg'), decimals are kept ('2.50' -> '2.5'), a minus
    sign counts when it is not a subtraction ('-3', '-$5', but '10-3' is 10 and 3); fractions and
    LaTeX are not read ('3/4' is 3 and 4: use MathAnswerReward for those).
    """
    numbers = _numbers(text)
    return canonical_number(numbers[-1]) if numbers else None


def anchored_number(text: str) -> str | None:
    """The first number after the last '####', else after the last 'answer is', else the last
    number: the rule of the GSM8K accuracy (rlhf/evaluate/gsm8k.py extract_final_number)."""
    for marker in _ANSWER_MARKERS:
        positions = [m.end() for m in marker.finditer(text)]
        if positions:
            after = _numbers(text[positions[-1]:])
            if after:
                return canonical_number(after[0])
    return last_number(text)


def gsm8k_reference(text: str) -> str | None:
    """The gold number of a GSM8K answer: the first number after its last ``####``, canonical
    (no thousands commas, no trailing zeros): ``"... $1080.\\n#### 1,080"`` -> ``"1080"``.

    None when the text has no ``####`` or no number after it. Same rule as
    rlhf.evaluate.gsm8k.gold_answer (the GSM8K loader's `reference`).
    """
    if "####" not in text:
        return None
    numbers = _numbers(text.rsplit("####", 1)[1])
    return canonical_number(numbers[0]) if numbers else None


def _reference(metadata: Sequence[dict], responses: Sequence[str], field: str, owner: str) -> list:
    """Each response's reference value; a clear error for a length mismatch or a missing field."""
    if len(metadata) != len(responses):
        raise ValueError(f"{owner}: got {len(responses)} responses but {len(metadata)} metadata rows "
                         "(one metadata dict per response is expected)")
    values = []
    for i, row in enumerate(metadata):
        if not isinstance(row, dict) or field not in row:
            fields = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise DataError(f"metadata has no field {field!r}, which {owner} reads the reference answer from "
                            f"(this row has: {fields}); set the reward's `field` to the right key",
                            source=owner, record=i)
        values.append(row[field])
    return values


def _reference_text(value) -> str | None:
    """A reference as text: GSM8K answers reduced to the number after `####`; None if empty."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    text = str(value).strip()
    if "####" in text:
        return gsm8k_reference(text)
    return text or None


_warned: set[tuple[str, str]] = set()


def _warn_unparsed_reference(owner: str, ref) -> None:
    key = (owner, repr(ref)[:200])
    if key not in _warned:
        _warned.add(key)
        log.warning("%s: cannot read the reference answer %r; every response to it scores 0", owner, ref)


# ---------------------------------------------------------------------------------------------
# math_verify: parse + verify
# ---------------------------------------------------------------------------------------------

_MATH_DELIMITERS = ("$", "\\(", "\\[", "\\boxed", "\\fbox")


def _timeout(seconds: int | None) -> int | None:
    """math_verify times out through signal.alarm, which only works in the main thread; elsewhere
    (a reward run from a worker thread) the timeout is switched off rather than raising."""
    return seconds if threading.current_thread() is threading.main_thread() else None


@functools.lru_cache(maxsize=8192)
def _parse_gold(text: str, timeout: int | None) -> tuple:
    """A reference through math_verify.parse. A bare LaTeX reference is read inside `$...$`
    (unwrapped, `2\\sqrt{3}` would be read as 2); one that is already delimited as is."""
    from math_verify import parse

    if any(d in text for d in _MATH_DELIMITERS):
        return tuple(parse(text, parsing_timeout=timeout))
    return tuple(parse(f"${text}$", parsing_timeout=timeout) or parse(text, parsing_timeout=timeout))


class MathAnswerReward:
    """1.0 when math_verify (Hugging Face's answer parser and equivalence checker) finds the
    response's final answer equivalent to the reference, else 0.0.

    The response goes through ``math_verify.parse`` with its default extraction (LaTeX, e.g.
    ``\\boxed{\\frac{1}{2}}`` or ``$...$``, then plain expressions such as ``1,080``, ``3/4``,
    ``0.75``), the reference too (see `_parse_gold`), and ``math_verify.verify(gold, pred)``
    decides equivalence: ``\\frac{1}{2}`` == ``0.5``, ``1,000`` == ``1000``, ``$18`` == ``18``.
    For GSM8K, the reference may be the full answer ending ``#### 72``.

    timeout_seconds bounds each parse and verify (math_verify's own limit, signal based: it is
    switched off when the reward runs outside the main thread). float_rounding is math_verify's
    rounding (decimal places) when comparing floats.
    """

    def __init__(self, field: str = "answer", timeout_seconds: int | None = 5, float_rounding: int = 6):
        if not field:
            raise ConfigError("reward.field", "must name the metadata field that holds the reference answer")
        if timeout_seconds is not None and int(timeout_seconds) <= 0:
            raise ConfigError("reward.timeout_seconds", f"must be a positive number of seconds or None, got {timeout_seconds}")
        self.field = field
        self.timeout_seconds = None if timeout_seconds is None else int(timeout_seconds)
        self.float_rounding = int(float_rounding)

    @property
    def required_fields(self) -> tuple[str, ...]:
        """The metadata field holding the reference answer (read by rlhf.config.fit before a run)."""
        return (self.field,)

    def __call__(self, prompts: list[list[dict]], responses: list[str],
                 metadata: list[dict]) -> tuple[list[float], dict[str, list]]:
        from math_verify import parse, verify

        refs = _reference(metadata, responses, self.field, type(self).__name__)
        timeout = _timeout(self.timeout_seconds)
        scores, parsed, hits, preds, ref_parsed = [], [], [], [], []
        for response, ref in zip(responses, refs):
            text = _reference_text(ref)
            try:
                gold = list(_parse_gold(text, timeout)) if text is not None else []
            except Exception:
                log.debug("math_verify.parse failed on the reference %r", ref, exc_info=True)
                gold = []
            try:
                pred = parse(response or "", parsing_timeout=timeout)
            except Exception:  # the checker must never stop training: count it as unparsed
                log.debug("math_verify.parse failed on %r", response, exc_info=True)
                pred = []
            hit = False
            if gold and pred:
                try:
                    hit = bool(verify(gold, pred, float_rounding=self.float_rounding, timeout_seconds=timeout))
                except Exception:
                    log.debug("math_verify.verify failed on %r vs %r", response, ref, exc_info=True)
            if not gold:
                _warn_unparsed_reference(type(self).__name__, ref)
            scores.append(1.0 if hit else 0.0)
            parsed.append(bool(pred))
            hits.append(hit)
            preds.append(str(pred[-1]) if pred else None)
            ref_parsed.append(bool(gold))
        return scores, {"parsed": parsed, "hit": hits, "pred": preds, "ref_parsed": ref_parsed}


# ---------------------------------------------------------------------------------------------
# exact match
# ---------------------------------------------------------------------------------------------

def _normalize_basic(text: str) -> str:
    """NFKC, casefold, whitespace runs collapsed to one space, outer whitespace and a trailing
    period stripped: ' The  Answer. ' -> 'the answer'."""
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return text[:-1].rstrip() if text.endswith(".") else text


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "none": lambda s: s,
    "strip": str.strip,
    "basic": _normalize_basic,
}


class ExactMatchReward:
    """1.0 when the response (or the part `extract` picks out of it) equals the reference string
    after normalization, else 0.0.

    normalize: "none" (byte for byte), "strip" (outer whitespace), "basic" (the default: NFKC,
    casefold, whitespace collapsed, a trailing period dropped), or any callable str -> str; it is
    applied to both sides.
    extract: an optional regex; the compared text is its last match in the response (group 1 when
    the regex has a group, else the whole match), e.g. r"<answer>(.*?)</answer>". A response with
    no match scores 0 and counts as unparsed. Without extract every response counts as parsed.
    """

    def __init__(self, field: str = "answer", normalize: str | Callable[[str], str] = "basic",
                 extract: str | None = None):
        if not field:
            raise ConfigError("reward.field", "must name the metadata field that holds the reference answer")
        if callable(normalize):
            self.normalize = normalize
        elif normalize in NORMALIZERS:
            self.normalize = NORMALIZERS[normalize]
        else:
            raise ConfigError("reward_fn.normalize", f"unknown normalizer {normalize!r}; allowed: "
                              f"{', '.join(NORMALIZERS)} or a callable")
        try:
            self.extract = re.compile(extract, re.DOTALL) if extract else None
        except re.error as exc:
            raise ConfigError("reward.extract", f"invalid regex {extract!r}: {exc}") from exc
        self.field = field

    def _answer(self, response: str) -> str | None:
        if self.extract is None:
            return response
        matches = list(self.extract.finditer(response))
        if not matches:
            return None
        last = matches[-1]
        return last.group(1) if self.extract.groups else last.group(0)

    @property
    def required_fields(self) -> tuple[str, ...]:
        """The metadata field holding the reference answer (read by rlhf.config.fit before a run)."""
        return (self.field,)

    def __call__(self, prompts: list[list[dict]], responses: list[str],
                 metadata: list[dict]) -> tuple[list[float], dict[str, list]]:
        refs = _reference(metadata, responses, self.field, type(self).__name__)
        scores, parsed, hits, preds, ref_parsed = [], [], [], [], []
        for response, ref in zip(responses, refs):
            answer = self._answer(response or "")
            ok_ref = ref is not None
            hit = answer is not None and ok_ref and self.normalize(answer) == self.normalize(str(ref))
            if not ok_ref:
                _warn_unparsed_reference(type(self).__name__, ref)
            scores.append(1.0 if hit else 0.0)
            parsed.append(answer is not None)
            hits.append(hit)
            preds.append(answer)
            ref_parsed.append(ok_ref)
        return scores, {"parsed": parsed, "hit": hits, "pred": preds, "ref_parsed": ref_parsed}


# ---------------------------------------------------------------------------------------------
# numeric match
# ---------------------------------------------------------------------------------------------

class NumericMatchReward:
    """1.0 when the number read from the response is within tolerance of the reference number,
    else 0.0; a plain-Python rule, no symbolic checker.

    Which number: the last number in the response (`last_number`). With anchored=True the
    number right after the last '####', else after the last 'answer is', wins over the last
    number (the rule of the GSM8K accuracy in rlhf/evaluate/gsm8k.py).
    The reference: a number (72, 0.5), a numeric string ("1,080"), or a GSM8K answer (the number
    after `####`); any other string is read with the same last-number rule.
    Tolerance: math.isclose(pred, ref, rel_tol=rel_tol, abs_tol=abs_tol); the defaults
    (rel_tol=1e-9, abs_tol=0) mean equal as numbers (18.00 == 18).
    """

    def __init__(self, field: str = "answer", rel_tol: float = 1e-9, abs_tol: float = 0.0, anchored: bool = False):
        if not field:
            raise ConfigError("reward.field", "must name the metadata field that holds the reference answer")
        for key, value in (("rel_tol", rel_tol), ("abs_tol", abs_tol)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"reward.{key}", f"must be a finite number >= 0, got {value!r}")
        self.field = field
        self.rel_tol = float(rel_tol)
        self.abs_tol = float(abs_tol)
        self.anchored = bool(anchored)

    def _read(self, response: str) -> str | None:
        return anchored_number(response) if self.anchored else last_number(response)

    @staticmethod
    def _ref_value(ref) -> float | None:
        if isinstance(ref, bool) or ref is None:
            return None
        if isinstance(ref, (int, float, Decimal)):
            return float(ref) if math.isfinite(float(ref)) else None
        text = _reference_text(ref)
        if text is None:
            return None
        number = canonical_number(text) if re.fullmatch(r"-?[\d,]*\.?\d+", text) else last_number(text)
        return None if number is None else float(number)

    @property
    def required_fields(self) -> tuple[str, ...]:
        """The metadata field holding the reference answer (read by rlhf.config.fit before a run)."""
        return (self.field,)

    def __call__(self, prompts: list[list[dict]], responses: list[str],
                 metadata: list[dict]) -> tuple[list[float], dict[str, list]]:
        refs = _reference(metadata, responses, self.field, type(self).__name__)
        scores, parsed, hits, preds, ref_parsed = [], [], [], [], []
        for response, ref in zip(responses, refs):
            pred = self._read(response or "")
            gold = self._ref_value(ref)
            if gold is None:
                _warn_unparsed_reference(type(self).__name__, ref)
            hit = (pred is not None and gold is not None
                   and math.isclose(float(pred), gold, rel_tol=self.rel_tol, abs_tol=self.abs_tol))
            scores.append(1.0 if hit else 0.0)
            parsed.append(pred is not None)
            hits.append(hit)
            preds.append(pred)
            ref_parsed.append(gold is not None)
        return scores, {"parsed": parsed, "hit": hits, "pred": preds, "ref_parsed": ref_parsed}
