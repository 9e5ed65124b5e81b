"""Hand-worked checks of the KL controllers (docs/methods.md §4.4)."""

from __future__ import annotations

import pytest

from rlhf.core.errors import ConfigError
from rlhf.rl.kl_control import AdaptiveKLController, FixedKLController, build_kl_controller


def test_fixed_controller_never_moves():
    controller = FixedKLController(0.04)
    controller.update(current_kl=100.0, n_steps=16)
    controller.update(current_kl=0.0, n_steps=16)
    assert controller.beta == 0.04


def test_adaptive_controller_two_updates_by_hand():
    controller = AdaptiveKLController(init_beta=0.1, target=6.0, horizon=100)
    # KL 9: e = clip(9/6 - 1 = 0.5, -0.2, 0.2) = 0.2 ; beta = 0.1 * (1 + 0.2 * 10/100) = 0.102
    controller.update(current_kl=9.0, n_steps=10)
    assert controller.beta == pytest.approx(0.102)
    # KL 5.7: e = 5.7/6 - 1 = -0.05 (inside the clip) ; beta = 0.102 * (1 - 0.05 * 20/100) = 0.10098
    controller.update(current_kl=5.7, n_steps=20)
    assert controller.beta == pytest.approx(0.10098)


def test_adaptive_controller_clips_the_error_downwards():
    controller = AdaptiveKLController(init_beta=1.0, target=6.0, horizon=10)
    # KL 0: e = clip(-1, -0.2, 0.2) = -0.2 ; beta = 1 * (1 - 0.2 * 5/10) = 0.9
    controller.update(current_kl=0.0, n_steps=5)
    assert controller.beta == pytest.approx(0.9)


def test_state_dict_round_trip_resumes_beta():
    controller = AdaptiveKLController(init_beta=0.002, target=4.0, horizon=50)
    controller.update(current_kl=8.0, n_steps=5)
    restored = AdaptiveKLController(init_beta=1.0)
    restored.load_state_dict(controller.state_dict())
    assert (restored.beta, restored.target, restored.horizon) == (controller.beta, 4.0, 50)
    assert all(isinstance(v, (int, float)) for v in controller.state_dict().values())
    fixed = FixedKLController(0.5)
    fixed.load_state_dict({"beta": 0.25})
    assert fixed.beta == 0.25


def test_build_kl_controller():
    fixed = build_kl_controller("fixed", 0.04, None, None)
    assert isinstance(fixed, FixedKLController) and fixed.beta == 0.04
    adaptive = build_kl_controller("adaptive", 0.002, None, None)
    # unset target / horizon fall back to the TRL defaults 6 and 10,000 (docs/methods.md §4.4 [ext])
    assert isinstance(adaptive, AdaptiveKLController)
    assert (adaptive.beta, adaptive.target, adaptive.horizon) == (0.002, 6.0, 10000)
    custom = build_kl_controller("adaptive", 0.1, 3.0, 500)
    assert (custom.target, custom.horizon) == (3.0, 500)


def test_build_kl_controller_rejects_unknown_kind_and_bad_values():
    with pytest.raises(ConfigError, match="ppo.kl.kind.*allowed: fixed, adaptive"):
        build_kl_controller("pid", 0.1, None, None)
    with pytest.raises(ConfigError, match="ppo.kl.init_beta"):
        build_kl_controller("fixed", -0.1, None, None)
    with pytest.raises(ConfigError, match="ppo.kl.target"):
        build_kl_controller("adaptive", 0.1, 0.0, None)
    with pytest.raises(ConfigError, match="ppo.kl.horizon"):
        build_kl_controller("adaptive", 0.1, 6.0, 0)
