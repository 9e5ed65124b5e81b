"""The LLM judge: pairwise verdicts from any OpenAI-compatible chat-completions endpoint
(docs/methods.md §5.3), and K responses ranked by a round robin of them.

Evaluation compares two generation files with `LLMJudge` (rlhf.evaluate.judges builds it); the
annotator `LLMJudgeAnnotator` ranks sampled responses for preference data with the same judge, ties
counting half a win as in AlpacaEval's convention.

Position bias: by default each pair is judged in both orders and counts as a win only when both
orders agree, otherwise a tie ([default] docs/methods.md §5.3). `random_order=True` (with swapping off)
shows one seeded random order per pair instead, as the thesis's AlpacaEval setup did.
The API key is read from the environment variable named by `api_key_env` at request time; it is
sent in the Authorization header only and never logged, stored or written to any output.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import string
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from rlhf.annotators.base import prompt_text, ranks_from_scores, render_conversation
from rlhf.core.errors import ConfigError, RLHFError
from rlhf.data.jsonl import iter_jsonl

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
TEMPLATE_FIELDS = frozenset({"question", "answer_a", "answer_b", "ref_answer_1"})
SWAP = {"a": "b", "b": "a", "tie": "tie"}


class JudgeRequestError(RLHFError):
    """The judge endpoint failed for good (non-retryable status, retries used up, or a bad reply)."""


@dataclass(frozen=True)
class JudgePrompt:
    """System message, user template with {question} {answer_a} {answer_b} [{ref_answer_1}], and how
    to read the verdict: the regex's first group, looked up in `labels`."""

    name: str
    system: str
    template: str
    verdict_regex: str = r"\[\[([ABC])\]\]"
    labels: dict = field(default_factory=lambda: {"A": "a", "B": "b", "C": "tie"})

    def fields(self) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.template) if name}


DEFAULT_JUDGE_PROMPT = JudgePrompt(
    name="rlhf-pairwise-v1",
    system=(
        "You compare two answers to the same user question and decide which one a careful, fair-minded "
        "person would prefer. Weigh helpfulness, correctness, relevance and clarity. The order of the "
        "answers carries no information, and a longer answer is not better for being longer. Give a "
        "brief justification, then finish with exactly one verdict: [[A]] if answer A is better, [[B]] if "
        "answer B is better, [[C]] if neither is better."
    ),
    template=(
        "Question:\n{question}\n\n"
        "--- Answer A ---\n{answer_a}\n--- End of answer A ---\n\n"
        "--- Answer B ---\n{answer_b}\n--- End of answer B ---"
    ),
)


def load_fastchat_judge_prompt(name: str, path: str | Path) -> JudgePrompt:
    """A single-turn pairwise prompt by name from FastChat's judge_prompts file (e.g. 'pair-v2',
    'pair-math-v1' in shared/data/eval/llm_judge_prompts.jsonl.gz)."""
    available = []
    for line_no, obj in iter_jsonl(path):
        if not isinstance(obj, dict):
            continue
        available.append(obj.get("name"))
        if obj.get("name") != name:
            continue
        prompt = JudgePrompt(name=name, system=obj.get("system_prompt", ""), template=obj.get("prompt_template", ""))
        unknown = prompt.fields() - TEMPLATE_FIELDS
        if obj.get("type") != "pairwise" or unknown:
            raise ConfigError("evaluate.judge.prompt", f"'{name}' in {path} (line {line_no}) is not a single-turn "
                              f"pairwise prompt (type {obj.get('type')!r}, extra fields {sorted(unknown)})")
        return prompt
    raise ConfigError("evaluate.judge.prompt", f"no prompt named '{name}' in {path}; available: {available}")


def parse_verdict(text: str, prompt: JudgePrompt) -> str | None:
    """Label of the last verdict match in the judge's reply ('a' | 'b' | 'tie'), None if absent."""
    matches = re.findall(prompt.verdict_regex, text)
    if not matches:
        return None
    last = matches[-1]
    return prompt.labels.get(last if isinstance(last, str) else last[0])


def http_hint(status: int, api_key_env: str) -> str:
    """What to check for the usual non-retryable answers."""
    if status in (401, 403):
        return f"check the API key in the environment variable {api_key_env}"
    if status == 404:
        return "check base_url (it should end in /v1 for most servers) and the judge model name"
    if status == 400:
        return "the server rejected the request; check the judge model name and max_tokens"
    return "the endpoint kept failing; check that the server is up"


def as_judge_prompt(template: JudgePrompt | str) -> JudgePrompt:
    """A JudgePrompt, or a bare user template string using {question} {answer_a} {answer_b}."""
    if isinstance(template, JudgePrompt):
        return template
    prompt = JudgePrompt(name="custom", system="", template=template)
    unknown = prompt.fields() - TEMPLATE_FIELDS
    if unknown or not {"answer_a", "answer_b"} <= prompt.fields():
        raise ConfigError("evaluate.judge.prompt_template", f"template must use {{answer_a}} and {{answer_b}} "
                          f"(and may use {sorted(TEMPLATE_FIELDS)}); unknown fields: {sorted(unknown)}")
    return prompt


class LLMJudge:
    """Pairwise judge over POST {base_url}/chat/completions; temperature 0 so a rerun asks the same."""

    def __init__(self, base_url: str, model: str, prompt_template: JudgePrompt | str = DEFAULT_JUDGE_PROMPT,
                 api_key_env: str = "OPENAI_API_KEY", swap_positions: bool = True, timeout: float = 60.0,
                 max_retries: int = 3, backoff_s: float = 1.0, random_order: bool = False, seed: int = 0,
                 temperature: float = 0.0, max_tokens: int | None = None):
        if swap_positions and random_order:
            raise ConfigError("evaluate.judge.random_order", "choose either swap_positions or random_order, not both")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.prompt = as_judge_prompt(prompt_template)
        self.api_key_env = api_key_env
        self.swap_positions = swap_positions
        self.random_order = random_order
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._rng = random.Random(seed)
        self.name = f"llm:{model}:{self.prompt.name}"

    def _request(self, payload: dict) -> dict:
        url = f"{self.base_url}/chat/completions"
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(payload).encode("utf-8")
        attempt = 0
        while True:
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read().decode("utf-8", "replace")
                try:
                    return json.loads(raw)
                except json.JSONDecodeError:
                    raise JudgeRequestError(f"{url} replied with non-JSON text: {raw[:200]!r}") from None
            except urllib.error.HTTPError as error:
                if error.code not in RETRYABLE_STATUS or attempt == self.max_retries:
                    detail = error.read().decode("utf-8", "replace")[:300]
                    raise JudgeRequestError(f"{url} answered HTTP {error.code} after {attempt + 1} attempt(s): "
                                            f"{detail or error.reason}; {http_hint(error.code, self.api_key_env)}") from None
                reason = f"HTTP {error.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                if attempt == self.max_retries:
                    raise JudgeRequestError(f"{url} unreachable after {attempt + 1} attempt(s): {error}") from None
                reason = type(error).__name__
            delay = self.backoff_s * 2**attempt
            attempt += 1
            log.warning("judge request failed (%s); retry %d/%d in %.1fs", reason, attempt, self.max_retries, delay)
            time.sleep(delay)

    def ask(self, question: str, first: str, second: str, reference: str | None = None) -> tuple[str | None, str]:
        """One judge call with `first` shown as A; returns (verdict from A's side or None, reply text)."""
        values = {"question": question, "answer_a": first, "answer_b": second, "ref_answer_1": reference or ""}
        messages = [{"role": "user", "content": self.prompt.template.format(**values)}]
        if self.prompt.system:
            messages.insert(0, {"role": "system", "content": self.prompt.system})
        payload = {"model": self.model, "messages": messages, "temperature": self.temperature}
        if self.max_tokens is not None:
            payload["max_tokens"] = self.max_tokens
        body = self._request(payload)
        try:
            text = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise JudgeRequestError(f"{self.base_url}/chat/completions reply lacks choices[0].message.content") from None
        return parse_verdict(text or "", self.prompt), text or ""

    def judge_one(self, prompt, response_a: str, response_b: str, reference: str | None = None) -> dict:
        """Winner plus per-order verdicts; an unreadable verdict counts as a tie and keeps its reply text."""
        question = prompt_text(prompt)
        if self.swap_positions:
            orders = ["ab", "ba"]
        else:
            orders = ["ba" if self.random_order and self._rng.random() < 0.5 else "ab"]
        verdicts, unparsed = [], []
        for order in orders:
            first, second = (response_a, response_b) if order == "ab" else (response_b, response_a)
            verdict, text = self.ask(question, first, second, reference)
            if verdict is None:
                unparsed.append(text)
                verdict = "tie"
            verdicts.append(verdict if order == "ab" else SWAP[verdict])
        winner = verdicts[0] if all(v == verdicts[0] for v in verdicts) else "tie"
        out = {"winner": winner, "orders": orders, "verdicts": verdicts}
        if unparsed:
            out["unparsed_replies"] = unparsed
        return out

    def judge_batch(self, prompts: Sequence, responses_a: Sequence[str], responses_b: Sequence[str]) -> list[dict]:
        return [self.judge_one(p, a, b) for p, a, b in zip(prompts, responses_a, responses_b)]

    def compare(self, prompt: str, response_a: str, response_b: str) -> str:
        return self.judge_one(prompt, response_a, response_b)["winner"]


VERDICT_POINTS = {"a": (1.0, 0.0), "b": (0.0, 1.0), "tie": (0.5, 0.5)}


def round_robin_wins(k: int, verdicts: dict[tuple[int, int], str]) -> list[float]:
    """wins_i = Σ_{j≠i} [i beat j] + 0.5 · [i tied j], from verdicts on every pair (i, j), i < j,
    where "a" means the first of the pair (i) won."""
    wins = [0.0] * k
    for i, j in combinations(range(k), 2):
        verdict = verdicts[(i, j)]
        if verdict not in VERDICT_POINTS:
            raise ValueError(f"judge verdict for pair ({i}, {j}) is {verdict!r}; expected 'a', 'b' or 'tie'")
        points_i, points_j = VERDICT_POINTS[verdict]
        wins[i] += points_i
        wins[j] += points_j
    return wins


class LLMJudgeAnnotator:
    """Rank by round-robin wins (K(K-1)/2 pairs per prompt, two calls each with position swap);
    equal wins tie.

    `judge` is anything with compare(prompt_text, a, b) -> "a" | "b" | "tie"; without one, an
    LLMJudge is built for base_url and model. The API key is read from the
    environment variable named by `api_key_env` at request time; this class never holds it.
    """

    def __init__(
        self,
        judge=None,
        base_url: str | None = None,
        model: str | None = None,
        prompt_template: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        swap_positions: bool = True,
        timeout: float = 60.0,
        max_retries: int = 3,
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ):
        if judge is None:
            if not base_url:
                raise ConfigError("annotator.base_url", "the LLM judge needs the endpoint's base URL, e.g. http://localhost:8000/v1")
            if not model:
                raise ConfigError("annotator.model", "the LLM judge needs a model name served at base_url")
            options = {} if prompt_template is None else {"prompt_template": prompt_template}
            judge = LLMJudge(
                base_url,
                model,
                api_key_env=api_key_env,
                swap_positions=swap_positions,
                timeout=timeout,
                max_retries=max_retries,
                temperature=temperature,
                max_tokens=max_tokens,
                **options,
            )
        self.judge = judge
        self.name = f"llm_judge:{model}" if model else "llm_judge"

    def rank(self, prompt: list[dict], responses: list[str]) -> list[int]:
        """Rank per response, 0 = most round-robin wins."""
        text = render_conversation(prompt)
        verdicts = {
            (i, j): self.judge.compare(text, responses[i], responses[j])
            for i, j in combinations(range(len(responses)), 2)
        }
        return ranks_from_scores(round_robin_wins(len(responses), verdicts))

    def labels(self, prompt: list[dict], response: str) -> dict[str, float]:
        raise NotImplementedError("the LLM judge compares responses; it gives no per-criterion labels")
