"""KL-coefficient controllers for the per-token KL penalty (docs/methods.md §4.4, §4.12).

Qwen uses a fixed β = 0.04; the thesis reports only an *initial* β = 0.002, which implies TRL's
adaptive controller. State is plain floats so a resumed run continues with the same β.
"""

from __future__ import annotations

from rlhf.core.errors import ConfigError

CONTROLLER_KINDS = ("fixed", "adaptive")
DEFAULT_TARGET = 6.0  # [ext] TRL default; no seed gives a target (docs/methods.md §4.4)
DEFAULT_HORIZON = 10000  # [ext] TRL default; no seed gives a horizon (docs/methods.md §4.4)


def _check_beta(beta: float) -> float:
    if beta < 0:
        raise ConfigError("ppo.kl.init_beta", f"must be >= 0 (Qwen 0.04, thesis 0.002); got {beta}")
    return float(beta)


class FixedKLController:
    """β stays at its initial value (Qwen's 0.04, Qwen §3.2.2)."""

    def __init__(self, beta: float):
        self.beta = _check_beta(beta)

    def update(self, current_kl: float, n_steps: int) -> None:
        """No-op: a fixed β ignores the observed KL."""

    def state_dict(self) -> dict[str, float]:
        return {"beta": self.beta}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.beta = float(state["beta"])


class AdaptiveKLController:
    """Proportional controller [ext]: e = clip(KL/target − 1, −0.2, 0.2); β ← β(1 + e · n_steps/horizon).

    Steers the observed objective KL (per-sequence sum, docs/methods.md §4.4) towards `target`; the
    thesis starts it at β = 0.002 (thesis Table 8).
    """

    def __init__(self, init_beta: float, target: float = DEFAULT_TARGET, horizon: int = DEFAULT_HORIZON):
        if target <= 0:
            raise ConfigError("ppo.kl.target", f"must be > 0 (TRL default {DEFAULT_TARGET}); got {target}")
        if horizon <= 0:
            raise ConfigError("ppo.kl.horizon", f"must be > 0 (TRL default {DEFAULT_HORIZON}); got {horizon}")
        self.beta = _check_beta(init_beta)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.beta *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, float]:
        return {"beta": self.beta, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.beta = float(state["beta"])
        self.target = float(state["target"])
        self.horizon = int(state["horizon"])


def build_kl_controller(
    kind: str, init_beta: float, target: float | None, horizon: int | None
) -> FixedKLController | AdaptiveKLController:
    """Controller for `ppo.kl.kind`; target/horizon None fall back to the TRL defaults (adaptive only)."""
    if kind == "fixed":
        return FixedKLController(init_beta)
    if kind == "adaptive":
        return AdaptiveKLController(
            init_beta,
            DEFAULT_TARGET if target is None else target,
            DEFAULT_HORIZON if horizon is None else horizon,
        )
    raise ConfigError("ppo.kl.kind", f"unknown KL controller {kind!r}; allowed: {', '.join(CONTROLLER_KINDS)}")
