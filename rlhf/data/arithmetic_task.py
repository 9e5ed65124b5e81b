"""A verifiable task the project makes itself: arithmetic word problems at three levels.

    level 1   one step       a + b, a - b                 operands 2..60
    level 2   two steps      a·b + c, a + b - c           operands 2..12 / 1..60
    level 3   three steps    a·b - c - d, a·b + c·d       operands 2..25 / 1..99

Each problem is a template (names, items) filled with an operand tuple; its answer is computed
here, so it is correct by construction. Splits are fixed by a hash of (level, operands),
independent of `seed` and of the template: a held-out ("test") operand tuple never occurs in
"train", under any wording, so the two splits share no problem. `seed` only picks and orders
problems inside a split; the same seed gives the same records.

Prompt records (PPO data, `builtin: arithmetic`): {"id", "prompt": [user turn], "metadata":
{"answer": int, "level": int}}, graded by MathAnswerReward / NumericMatchReward (reward_fn=
math_answer). SFT records: the same problems of the train split with a worked solution ending
GSM8K-style in "#### <answer>". `python -m rlhf.data.arithmetic_task --out DIR` writes
prompts_train.jsonl, prompts_test.jsonl and sft_train.jsonl there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from rlhf.core.errors import ConfigError, exit_on_error
from rlhf.data.jsonl import write_jsonl_atomic

SPLITS = ("train", "test")
TEST_BUCKETS = range(0, 20)                  # 20 of 100 hash buckets of (level, operands) are held out
LEVELS = (1, 2, 3)
MAX_MISSES = 20_000                          # draws in a row without a new problem: the split is used up
INSTRUCTION = "Solve the problem. End your answer with a line '#### <number>'."
METADATA_FIELDS = ("answer", "level")        # what each prompt record's metadata holds (besides its id)

NAMES = ("Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jamal", "Kira", "Leo")
ITEMS = ("apple", "marble", "sticker", "pencil", "cookie", "stamp", "shell", "card")

# operand ranges (inclusive) per level, one per operand
RANGES = {1: ((2, 60), (2, 60)), 2: ((2, 12), (2, 12), (1, 60)), 3: ((2, 25), (2, 25), (1, 99), (1, 99))}


class Template:
    """A word problem: its text, its answer and its worked solution from the operands."""

    def __init__(self, key: str, text: str, answer: Callable[..., int], steps: Callable[..., list[str]]):
        self.key, self.text, self.answer, self.steps = key, text, answer, steps


TEMPLATES: dict[int, tuple[Template, ...]] = {
    1: (
        Template("more", "{name} has {a} {item}s and gets {b} more. How many {item}s does {name} have now?",
                 lambda a, b: a + b, lambda a, b: [f"{a} + {b} = {a + b}"]),
        Template("gave", "{name} had {a} {item}s and gave {b} of them away. How many {item}s are left?",
                 lambda a, b: a - b, lambda a, b: [f"{a} - {b} = {a - b}"]),
    ),
    2: (
        Template("boxes", "{name} buys {a} boxes with {b} {item}s in each box and already had {c} {item}s. "
                          "How many {item}s does {name} have in total?",
                 lambda a, b, c: a * b + c, lambda a, b, c: [f"{a} * {b} = {a * b}", f"{a * b} + {c} = {a * b + c}"]),
        Template("trade", "{name} has {a} {item}s, finds {b} more, then gives {c} to a friend. "
                          "How many {item}s does {name} have now?",
                 lambda a, b, c: a + b - c, lambda a, b, c: [f"{a} + {b} = {a + b}", f"{a + b} - {c} = {a + b - c}"]),
    ),
    3: (
        Template("savings", "{name} saves {a} dollars a week for {b} weeks, then spends {c} dollars on a book and "
                            "{d} dollars on a game. How many dollars are left?",
                 lambda a, b, c, d: a * b - c - d,
                 lambda a, b, c, d: [f"{a} * {b} = {a * b}", f"{a * b} - {c} = {a * b - c}",
                                     f"{a * b - c} - {d} = {a * b - c - d}"]),
        Template("packs", "{name} buys {a} packs of {b} {item}s and {c} packs of {d} {item}s. "
                          "How many {item}s is that?",
                 lambda a, b, c, d: a * b + c * d,
                 lambda a, b, c, d: [f"{a} * {b} = {a * b}", f"{c} * {d} = {c * d}",
                                     f"{a * b} + {c * d} = {a * b + c * d}"]),
    ),
}


def split_of(level: int, operands: Sequence[int]) -> str:
    """"test" for 20 of 100 hash buckets of (level, operands), else "train"; seed-independent."""
    key = f"{level}:" + ",".join(str(x) for x in operands)
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100
    return "test" if bucket in TEST_BUCKETS else "train"


def _check(split: str, levels: Sequence[int]) -> None:
    if split not in SPLITS:
        raise ConfigError("data.sources.split", f"the arithmetic task's splits are {list(SPLITS)}, got {split!r}")
    unknown = [lv for lv in levels if lv not in LEVELS]
    if unknown or not levels:
        raise ConfigError("data.sources.levels", f"levels must be a non-empty subset of {list(LEVELS)}, got {list(levels)}")


def _problems(split: str, n: int, seed: int, levels: Sequence[int]) -> list[tuple[int, Template, tuple, str, str]]:
    """n distinct (level, template, operands, name, item) of one split, levels in turn."""
    _check(split, levels)
    rng = random.Random(f"arithmetic-{split}-{seed}")
    seen: set[tuple] = set()
    out = []
    misses = 0
    while len(out) < n:
        if misses > MAX_MISSES:
            raise ConfigError("data.sources.n", f"could not draw {n} distinct {split} problems at levels "
                                                f"{list(levels)} (found {len(out)}); ask for fewer")
        level = levels[len(out) % len(levels)]
        template = rng.choice(TEMPLATES[level])
        operands = tuple(rng.randint(low, high) for low, high in RANGES[level])
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        key = (level, template.key, operands)
        if key in seen or split_of(level, operands) != split or template.answer(*operands) < 0:
            misses += 1
            continue
        misses = 0
        seen.add(key)
        out.append((level, template, operands, name, item))
    return out


def _text(template: Template, operands: tuple, name: str, item: str) -> str:
    values = dict(zip("abcd", operands))
    return template.text.format(name=name, item=item, **values)


def _id(level: int, template: Template, operands: tuple) -> str:
    return f"arith-L{level}-{template.key}-" + "-".join(str(x) for x in operands)


def arithmetic_prompts(split: str = "train", n: int = 512, seed: int = 0, levels: Sequence[int] = LEVELS) -> list[dict]:
    """`n` prompt records of one split: {"id", "prompt": [user turn], "metadata": {"answer", "level"}}."""
    if n is None or n <= 0:
        raise ConfigError("data.sources.n", f"need n > 0 arithmetic problems, got {n}")
    records = []
    for level, template, operands, name, item in _problems(split, n, seed, levels):
        question = f"{_text(template, operands, name, item)}\n{INSTRUCTION}"
        records.append({"id": _id(level, template, operands), "prompt": [{"role": "user", "content": question}],
                        "metadata": {"answer": template.answer(*operands), "level": level}, "source": "arithmetic"})
    return records


def solution(template: Template, operands: tuple) -> str:
    """The worked solution: one line per step, then "#### <answer>"."""
    steps = template.steps(*operands)
    return "\n".join(steps) + f"\n#### {template.answer(*operands)}"


def arithmetic_sft_records(n: int = 512, seed: int = 0, levels: Sequence[int] = LEVELS) -> list[dict]:
    """`n` {"messages": [user, assistant]} records on the train split (another draw than the
    prompts of the same seed, same split), the assistant turn a worked solution ending "#### N"."""
    if n is None or n <= 0:
        raise ConfigError("data.sources.n", f"need n > 0 arithmetic SFT records, got {n}")
    records = []
    for level, template, operands, name, item in _problems("train", n, seed + 104_729, levels):
        question = f"{_text(template, operands, name, item)}\n{INSTRUCTION}"
        records.append({"messages": [{"role": "user", "content": question},
                                     {"role": "assistant", "content": solution(template, operands)}],
                        "source": "arithmetic"})
    return records


def write_arithmetic_task(out_dir: str | Path, n_train: int = 2048, n_test: int = 256, n_sft: int = 1024,
                          seed: int = 0) -> dict[str, Path]:
    """prompts_train.jsonl, prompts_test.jsonl and sft_train.jsonl under out_dir, each written
    atomically. Prompt lines are {"id", "prompt", "answer", "level"}: read them as a prompt source
    with `adapter: generic, kind: prompt, fields: {prompt: prompt}, metadata_fields: {answer:
    answer, level: level}` (or use `builtin: arithmetic` directly); SFT lines are {"messages"}."""
    out = Path(out_dir)
    paths = {}
    for split, n in (("train", n_train), ("test", n_test)):
        rows = [{"id": r["id"], "prompt": r["prompt"][0]["content"], **r["metadata"]}
                for r in arithmetic_prompts(split, n, seed)]
        paths[f"prompts_{split}"] = write_jsonl_atomic(out / f"prompts_{split}.jsonl", rows)
    paths["sft_train"] = write_jsonl_atomic(out / "sft_train.jsonl", arithmetic_sft_records(n_sft, seed))
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rlhf.data.arithmetic_task", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for prompts_{train,test}.jsonl and sft_train.jsonl")
    parser.add_argument("--n-train", type=int, default=2048)
    parser.add_argument("--n-test", type=int, default=256)
    parser.add_argument("--n-sft", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = write_arithmetic_task(args.out, args.n_train, args.n_test, args.n_sft, args.seed)
    print(json.dumps({k: str(v) for k, v in paths.items()}))


if __name__ == "__main__":
    exit_on_error(main)()
