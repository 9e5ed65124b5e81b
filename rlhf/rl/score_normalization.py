"""Running reward normalisation and score clipping (docs/methods.md §4.3 steps 3–4).

Qwen normalises rewards "based on the running mean" (Qwen §3.2.2); whether it
also divides by the std is unstated, so that is a switch (docs/methods.md §8.3.6). The thesis clips
scores to ±4 (thesis Table 8). Order [default]: normalise, then clip.
"""

from __future__ import annotations

import torch

from rlhf.core.errors import ConfigError
from rlhf.core.running_stats import RunningMeanStd


def clip_scores(x: torch.Tensor, clip: float | None) -> torch.Tensor:
    """clamp(x, −c, c); None leaves x as is (thesis c = 4, thesis Table 8)."""
    if clip is None:
        return x
    if clip <= 0:
        raise ConfigError("reward.score_clip", f"must be > 0 or null for no clipping (thesis 4); got {clip}")
    return x.clamp(-clip, clip)


def normalize_and_clip(
    scores: torch.Tensor,
    stats: RunningMeanStd | None,
    subtract_mean: bool,
    divide_std: bool,
    clip: float | None,
) -> torch.Tensor:
    """Sequence scores after running normalisation, then clipping (docs/methods.md §4.3 steps 3–4).

    The stats absorb the raw scores *before* they normalise them, so a batch is centred on a
    baseline that includes itself: the first batch comes out centred on its own mean instead of
    on 0, and one batch of outlying scores cannot produce a huge un-normalised step.
    stats=None turns normalisation off (the two switches are then unused); clipping still applies.
    """
    if stats is not None:
        stats.update(scores)
        scores = stats.normalize(scores, subtract_mean=subtract_mean, divide_std=divide_std)
    return clip_scores(scores, clip)
