"""A format reward: 1.0 when the response has the required shape, else 0.0.

A callable of the reward interface: reward(prompts, responses, metadata) -> (scores, details);
the metadata is not read (it may be None).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rlhf.core.errors import ConfigError

MODES = ("search", "fullmatch")
_TAG_NAME = re.compile(r"[A-Za-z_][\w.:-]*")


class FormatReward:
    """1.0 when the response satisfies every condition given, else 0.0.

    pattern: a regex, compiled with `flags` (re.DOTALL by default, so `.` spans lines). With
      mode="search" (the default) it may match anywhere in the response; with mode="fullmatch"
      it must match the whole response (surrounding whitespace is stripped first when
      strip=True, the default, since generations often end in a newline).
    tags: tag names, e.g. ["think", "answer"]: the response must contain `<think>...</think>`
      followed (later in the text, not necessarily adjacent) by `<answer>...</answer>`: each pair
      opened and closed, in this order. A single name may be given as a string.
    At least one of pattern and tags is required; with both, both must hold.

    details: {"hit": [bool]}.
    """

    def __init__(self, pattern: str | None = None, tags: Sequence[str] | str | None = None,
                 mode: str = "search", flags: int = re.DOTALL, strip: bool = True):
        if pattern is None and not tags:
            raise ConfigError("reward.pattern", "a format reward needs a `pattern` regex or `tags` (or both)")
        if mode not in MODES:
            raise ConfigError("reward.mode", f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
        try:
            self.pattern = re.compile(pattern, flags) if pattern is not None else None
        except re.error as exc:
            raise ConfigError("reward.pattern", f"invalid regex {pattern!r}: {exc}") from exc
        if isinstance(tags, str):
            tags = [tags]
        self.tags = list(tags or [])
        for tag in self.tags:
            if not isinstance(tag, str) or not _TAG_NAME.fullmatch(tag):
                raise ConfigError("reward.tags", f"{tag!r} is not a tag name: give bare names like 'answer', "
                                  "not '<answer>'")
        self.tag_pattern = (re.compile(".*?".join(rf"<{re.escape(t)}>.*?</{re.escape(t)}>" for t in self.tags),
                                       re.DOTALL) if self.tags else None)
        self.mode = mode
        self.strip = bool(strip)

    def matches(self, response: str) -> bool:
        response = response or ""
        if self.pattern is not None:
            text = response.strip() if self.strip else response
            found = self.pattern.fullmatch(text) if self.mode == "fullmatch" else self.pattern.search(text)
            if found is None:
                return False
        return self.tag_pattern is None or self.tag_pattern.search(response) is not None

    def __call__(self, prompts: list[list[dict]], responses: list[str],
                 metadata: list[dict] | None = None) -> tuple[list[float], dict[str, list]]:
        hits = [self.matches(r) for r in responses]
        return [1.0 if h else 0.0 for h in hits], {"hit": hits}
