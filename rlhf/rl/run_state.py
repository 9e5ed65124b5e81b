"""What an RL run carries besides weights and optimizers, so a resumed run continues where it
stopped: the KL controller, the running score statistics, the skip counter, a stateful reward's
state (CRS normalisation), the PTX and refill streams' positions and the RNG. The streams are
opened at fit start, when the datamodule exists; a state read from a checkpoint before then is
kept and applied there."""

from __future__ import annotations

import torch
from torch import nn

from rlhf.core.errors import ConfigError

CHECKPOINT_KEY = "ppo_state"


class RunState:
    def __init__(self, module, key: str):
        self.module, self.key = module, key
        self.ptx_stream = self.refill_stream = None
        self._pending: dict = {}

    def open_streams(self, datamodule) -> None:
        m, cfg = self.module, self.module.cfg
        if "reward_fn" in self._pending:
            m.reward_fn.load_state_dict(self._pending.pop("reward_fn"))
        if cfg.update.ptx_coef > 0 and self.ptx_stream is None:
            self.ptx_stream = datamodule.ptx_stream() if datamodule is not None and hasattr(datamodule, "ptx_stream") else None
            if self.ptx_stream is None:
                raise ConfigError(f"{self.key}.update.ptx_coef", "> 0 needs data.ptx.sources (an SFT corpus)")
            if self._pending.get("ptx"):
                self.ptx_stream.load_state_dict(self._pending["ptx"])
        if cfg.algorithm.dynamic_sampling and self.refill_stream is None:
            if datamodule is None or getattr(datamodule, "records", None) is None:
                raise ConfigError(f"{self.key}.algorithm.dynamic_sampling", "needs a prompt datamodule to refill from")
            from rlhf.data.prompt_stream import PromptStream

            self.refill_stream = PromptStream(datamodule.records, datamodule.batch_size, m.seed)
            if self._pending.get("refill"):
                self.refill_stream.load_state_dict(self._pending["refill"])

    def save(self, checkpoint: dict) -> None:
        m = self.module
        reward = m.built_reward
        state = {"kl_controller": m.kl_controller.state_dict(), "skipped_updates": m.updates.skipped_updates,
                 "score_stats": m.shaper.state_dict(),
                 "reward_fn": reward.state_dict() if hasattr(reward, "state_dict") and not isinstance(reward, nn.Module) else None,
                 "ptx": self.ptx_stream.state_dict() if self.ptx_stream is not None else None,
                 "refill": self.refill_stream.state_dict() if self.refill_stream is not None else None,
                 "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        checkpoint[CHECKPOINT_KEY] = state

    def load(self, checkpoint: dict) -> None:
        m, state = self.module, checkpoint[CHECKPOINT_KEY]
        m.kl_controller.load_state_dict(state["kl_controller"])
        m.updates.skipped_updates = int(state["skipped_updates"])
        m.shaper.load_state_dict(state["score_stats"])
        self._pending = {k: state.get(k) for k in ("ptx", "refill")}
        if state.get("reward_fn") is not None:
            self._pending["reward_fn"] = state["reward_fn"]
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
