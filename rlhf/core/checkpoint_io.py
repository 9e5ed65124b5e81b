"""Lightning CheckpointIO that never leaves half a checkpoint and never unpickles arbitrary objects.

Save: through rlhf.core.atomic.publish_file (a temp file in the target's folder, fsync,
`os.replace` over the target, fsync the folder), so a kill at any moment leaves either the
previous file or the new one. Load: `torch.load(weights_only=True)` only, and every way a file
can be unusable (truncated, not a checkpoint, tensors that do not fit the module) becomes one
CheckpointError naming the file and what does not match.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO

from rlhf.core.atomic import publish_file
from rlhf.core.errors import RLHFError

REQUIRED_KEYS = ("state_dict", "pytorch-lightning_version")
SHOWN = 5


class CheckpointError(RLHFError, ValueError):
    """A checkpoint file that is unreadable or does not fit the module being trained."""

    def __init__(self, path, message: str):
        super().__init__(f"checkpoint {path}: {message}")
        self.path = str(path)


def atomic_torch_save(obj, path: str | Path) -> Path:
    """torch.save published in one rename (rlhf.core.atomic): a kill leaves the old file or the new."""
    return publish_file(path, lambda handle: torch.save(obj, handle))


def state_dict_mismatch(expected: dict, loaded: dict) -> list[str]:
    """Human-readable differences: keys only in one side, and tensors whose shapes differ."""
    missing = sorted(set(expected) - set(loaded))
    unexpected = sorted(set(loaded) - set(expected))
    reshaped = [f"{k}: checkpoint {tuple(loaded[k].shape)} vs module {tuple(expected[k].shape)}"
                for k in sorted(set(expected) & set(loaded))
                if hasattr(loaded[k], "shape") and hasattr(expected[k], "shape")
                and tuple(loaded[k].shape) != tuple(expected[k].shape)]
    problems = []
    for label, items in (("missing from the checkpoint", missing), ("not in the module", unexpected),
                         ("shape differs", reshaped)):
        if items:
            more = f" (+{len(items) - SHOWN} more)" if len(items) > SHOWN else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:SHOWN])}{more}")
    return problems


class AtomicCheckpointIO(CheckpointIO):
    def __init__(self):
        self._module_ref = None

    def bind_module(self, module) -> None:
        """Compare loaded weights against this module (see callbacks.checkpoint_compat)."""
        self._module_ref = weakref.ref(module)

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = None) -> dict:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(path, "file not found (resume with ckpt_path=last needs the same run dir: "
                                        "pass hydra.run.dir=<run dir>)")
        if weights_only is False:
            raise CheckpointError(path, "weights_only=False would unpickle arbitrary objects; not allowed")
        try:
            checkpoint = torch.load(path, map_location=map_location or "cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError(path, f"unreadable ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                                        "the file is truncated, corrupt or not a torch checkpoint") from err
        if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in REQUIRED_KEYS):
            found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
            raise CheckpointError(path, f"not a Lightning checkpoint: needs keys {list(REQUIRED_KEYS)}, found {found}")
        module = self._module_ref() if self._module_ref else None
        if module is not None and getattr(module, "strict_loading", True):
            problems = state_dict_mismatch(module.state_dict(), checkpoint["state_dict"])
            if problems:
                raise CheckpointError(path, f"weights do not match {type(module).__name__} (was it written with "
                                            f"another model/peft config?): " + "; ".join(problems))
        return checkpoint

    def remove_checkpoint(self, path) -> None:
        path = Path(path)
        if path.is_file():
            path.unlink()
