"""NaN/inf skipping, KL ceiling and reward-collapse warning on hand-checkable dummy modules."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))  # dummy lives there
from dummy import TinyRegression, quiet_trainer, regression_loader  # noqa: E402

from callbacks.kl_ceiling import KLCeiling
from callbacks.nonfinite_guard import NonFiniteGuard
from callbacks.reward_collapse import RewardCollapseWarning, window_std
from rlhf.core.errors import TrainingFault


class PoisonedRegression(TinyRegression):
    """Adds `poison` (NaN or inf) to the loss at the listed global steps; records weights before each step."""

    def __init__(self, poison_steps, poison=float("nan"), manual=False):
        super().__init__(manual=manual)
        self.poison_steps, self.poison = set(poison_steps), poison
        self.weights_before: list[torch.Tensor] = []

    def loss(self, batch):
        self.weights_before.append(self.layer.weight.detach().clone())
        loss = super().loss(batch)
        return loss + self.poison if self.global_step in self.poison_steps else loss


def fit(module, guard, steps):
    trainer = quiet_trainer(".", max_steps=steps, callbacks=[guard], log_every_n_steps=1)
    trainer.fit(module, regression_loader(n=16, batch_size=4, shuffle=False))
    return trainer


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
@pytest.mark.parametrize("manual", [False, True])
def test_one_bad_step_is_skipped_and_counted(poison, manual):
    module = PoisonedRegression([2], poison, manual)
    guard = NonFiniteGuard(max_consecutive=3)
    trainer = fit(module, guard, steps=4)
    w = module.weights_before
    # step 2 is skipped: the weights entering step 3 equal those entering step 2; the others moved.
    assert torch.equal(w[3], w[2])
    assert not torch.equal(w[2], w[1]) and not torch.equal(module.layer.weight.detach(), w[3])
    assert guard.skips == 1 and guard.consecutive == 0
    assert float(trainer.callback_metrics["train/nonfinite_skips"]) == 1.0
    assert all(math.isfinite(v) for v in module.layer.weight.detach().flatten().tolist())


def test_nan_gradient_with_finite_loss_is_skipped():
    class GradPoison(TinyRegression):
        def on_after_backward(self):
            if self.global_step == 1:
                self.layer.bias.grad[0] = float("nan")

    module = GradPoison()
    guard = NonFiniteGuard()
    fit(module, guard, steps=3)
    assert guard.skips == 1


def test_consecutive_bad_steps_stop_with_a_message():
    # every step poisoned, max 3 in a row: steps 0, 1, 2 skipped -> stop at global step 2
    module = PoisonedRegression(range(10))
    with pytest.raises(TrainingFault, match=r"step 2: 3 optimizer steps in a row .*learning rate too high"):
        fit(module, NonFiniteGuard(max_consecutive=3), steps=10)
    assert all(torch.equal(w, module.weights_before[0]) for w in module.weights_before)


class LogsSequences(TinyRegression):
    """Logs the i-th value of each sequence at global step i."""

    def __init__(self, **sequences):
        super().__init__()
        self.sequences = sequences

    def training_step(self, batch, batch_idx):
        for name, values in self.sequences.items():
            self.log(name, float(values[self.global_step]))
        return super().training_step(batch, batch_idx)


def test_kl_ceiling_names_step_value_and_causes():
    module = LogsSequences(**{"ppo/kl": [0.1, 0.5, 12.0, 0.2]})
    with pytest.raises(TrainingFault, match=r"step 3: ppo/kl = 12 is above the ceiling 10.*beta.*reward hacking"):
        fit(module, KLCeiling(ceiling=10.0, metric="ppo/kl"), steps=4)  # logged at step 2, checked after it -> 3


def test_kl_floor_and_stop_action():
    module = LogsSequences(**{"train/kl": [0.1, -0.5, 0.2, 0.2]})
    callback = KLCeiling(ceiling=10.0, metric="train/kl", floor=-0.1, action="stop")
    trainer = fit(module, callback, steps=4)
    assert trainer.global_step == 2 and "train/kl = -0.5 is below the floor -0.1" in callback.tripped


def test_kl_within_bounds_runs_to_the_end():
    trainer = fit(LogsSequences(**{"train/kl": [0.1, 0.2, 0.3, 0.3]}), KLCeiling(ceiling=0.35, metric="train/kl"), steps=4)
    assert trainer.global_step == 4


def test_window_std_by_hand():
    # values 1, 3: mean 2, deviations -1, 1 -> sqrt((1 + 1) / 2) = 1
    assert window_std([1.0, 3.0]) == 1.0
    assert window_std([5.0, 5.0, 5.0]) == 0.0


def test_reward_collapse_warns_once_when_the_window_goes_flat(caplog):
    rewards = [0.3, -0.2, 0.7, 0.5, 0.5, 0.5, 0.5, 0.5]
    callback = RewardCollapseWarning(metric="train/reward_mean", window=4, min_std=1e-4)
    fit(LogsSequences(**{"train/reward_mean": rewards}), callback, steps=8)
    # windows end at steps 3..7; only [0.5]*4 (steps 3-6 and 4-7) is flat -> first flat at global step 7 -> one warning
    assert len(callback.warnings) == 1
    assert callback.warnings[0].startswith("step 7: train/reward_mean has std 0 < 0.0001 over the last 4 steps")


def test_reward_that_varies_never_warns():
    callback = RewardCollapseWarning(metric="train/reward_mean", window=3)
    fit(LogsSequences(**{"train/reward_mean": [0.1, 0.2, 0.3, 0.4, 0.5]}), callback, steps=5)
    assert callback.warnings == []
