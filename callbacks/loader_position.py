"""Put a resumed run's training loader back at the batch where the checkpoint was taken.

Lightning reads a stateful loader's position from the checkpoint only when it builds the train
loader after restoring the loops. A module whose `configure_optimizers` asks for
`trainer.estimated_stepping_batches` (to size a warm-up or cosine schedule) makes Lightning build
the loader earlier, before the checkpoint is read, and the saved position is then never applied:
the resumed run starts the epoch over (seen as PPO prompts repeating after a resume). This
callback applies the pending position at `on_train_start`, after the restore and before the
first batch is drawn.
"""

from __future__ import annotations

from lightning.pytorch import Callback


class LoaderPositionRestore(Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        loop = trainer.fit_loop
        pending = getattr(loop, "_combined_loader_states_to_load", None)
        loader = getattr(loop, "_combined_loader", None)
        if pending and loader is not None:
            loader._load_state_dicts(pending)
            loop._combined_loader_states_to_load = []
